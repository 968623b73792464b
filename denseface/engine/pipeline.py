"""The models and the steps they take on one photo: detector views, the mesh fit, verification, the
888 points. Which steps run on a photo, and in which order, is ``cascade.py``.

Detector views (:class:`Search`, each computed at most once per photo): the full-range detector over
the whole image, scaled so that a face of ``min_face_size`` is :data:`DETECTOR_MIN_FACE` px in its
input (the model runs at any size; see ``full_range.py``); BlazeFace short-range on the same view
letterboxed to 128² (cheap, better on large close-up faces); in the ``thorough`` profile (the
default) CenterFace over the same view: a second family that finds faces turned away, covered or in
crowds that BlazeFace misses. Each can also run on the view turned by 90°, 180° and 270° (mapped back
to the image). :meth:`Search.union` merges them all, overlapping detections of one face kept as
alternatives to its best one: the thorough search.
Landmarking (:meth:`FacePipeline.fit`): Face Mesh v2 on a rotated square crop around a detection,
then (``refine``) a second pass on the crop derived from the first pass's landmarks, as MediaPipe's
tracker does. Verification (:meth:`FacePipeline.accept`): the face on its aligned crop scored by two
detector families (``verify.py``); a face whose mesh doubts it (presence < 0.5: turned away,
covered) is kept only when verified and when CenterFace sees it best the way the mesh turns it (not
fitted upside down). When a crop fails, an alternative detection's crop is tried.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np
import numpy.typing as npt

from denseface.engine.centerface import CenterFace
from denseface.engine.detector import Detection, FaceDetector, iou, overlap
from denseface.engine.full_range import MAX_SIDE, FullRangeDetector, resize_view
from denseface.engine.layout import Layout
from denseface.engine.mesh import FaceMesh, MeshResult, Roi, roi_from_detection, roi_from_landmarks
from denseface.engine.pose import PoseEstimator
from denseface.engine.result import Box, Face
from denseface.engine.verify import FaceVerifier

F32 = npt.NDArray[np.float32]
RGB = npt.NDArray[np.uint8]

# np.rot90(image, k) as OpenCV rotations (much faster than a numpy copy of a rotated view)
_CV2_ROTATIONS = {1: cv2.ROTATE_90_COUNTERCLOCKWISE, 2: cv2.ROTATE_180, 3: cv2.ROTATE_90_CLOCKWISE}

# px in the full-range input: the model finds faces down to 7–8 px (measured; margin kept)
DETECTOR_MIN_FACE = 10.0
MIN_VIEW = 192  # the full-range view's longer side is never scaled below this (its native input)
CENTERFACE_MIN_VIEW = 128  # CenterFace's view: the same scale, floored at this instead
LARGEST_MARGIN = 0.5  # Mode 1 compares final boxes of detections at least this size of the largest
NESTED = 0.6  # a face box this much inside another (intersection / smaller area) is the same face
ALTERNATIVE_IOU = 0.8  # another detection of a face is a different crop to try below this IoU
MAX_ALTERNATIVES = 2
# second mesh pass only when the landmark crop moved more than this from the detector crop
REFINE_SHIFT = 0.04  # of the crop side
REFINE_SCALE = 0.08
REFINE_TURN = math.radians(4.0)
# chosen on the curve of benchmarks/precision.py (tuning photos only; see README "Precision")
VERIFY_THRESHOLD = 1.10
WEAK_SCORE = (
    0.1  # full-range detections from this score up, below score_threshold, are weak: a face may hide there
)


DETECTORS = ("fast", "thorough", "exhaustive")


@dataclass(frozen=True)
class PipelineOptions:
    min_face_size: float = 40.0  # smallest face (detector box side, image px) searched for
    score_threshold: float = 0.4  # detector score (a proposal: every face is verified after)
    presence_threshold: float = 0.5  # mesh face-presence probability
    refine: bool = True  # second mesh pass on the landmark-derived crop
    nms_iou: float = 0.3
    # a face is kept when the two detectors' scores on its aligned crop add up to this (0: no check)
    verify_threshold: float = VERIFY_THRESHOLD
    # the face-finding profile (cascade.py): "thorough" runs CenterFace over the whole view where a doubt
    # remains, "fast" never; "exhaustive" runs every detector on every photo (no cascade)
    detector: str = "thorough"

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS:
            raise ValueError(f"detector must be one of {', '.join(DETECTORS)}, not {self.detector!r}")


def to_original(points: F32, k: int, width: int, height: int) -> F32:
    """Map (x, y) from ``np.rot90(image, k)`` back to the original image frame."""
    x, y = points[..., 0], points[..., 1]
    k %= 4
    if k == 0:
        ox, oy = x, y
    elif k == 1:
        ox, oy = width - y, x
    elif k == 2:
        ox, oy = width - x, height - y
    else:
        ox, oy = y, height - x
    return np.stack([ox, oy], axis=-1).astype(np.float32)


class FacePipeline:
    """Owns the models and the layout. Not thread-safe."""

    def __init__(
        self,
        detector: FullRangeDetector,
        mesh: FaceMesh,
        layout: Layout,
        pose: PoseEstimator,
        options: PipelineOptions | None = None,
        short_range: FaceDetector | None = None,
        verifier: FaceVerifier | None = None,
        centerface: CenterFace | None = None,
    ) -> None:
        self.detector = detector
        self.short_range = short_range
        self.verifier = verifier
        self.centerface = centerface
        self.mesh = mesh
        self.layout = layout
        self.pose = pose
        self.options = options or PipelineOptions()

    def runs(self) -> ModelRuns:
        """Every model run made so far, per model (a photo's cost: the difference around a call)."""
        return ModelRuns(
            full_range=self.detector.runs,
            short_range=self.short_range.runs if self.short_range is not None else 0,
            mesh=self.mesh.runs,
            centerface=self.centerface.runs if self.centerface is not None else 0,
        )

    # -- finding faces -------------------------------------------------------------------------
    def view_scale(self, width: int, height: int) -> float:
        """How much the full-range view shrinks the image: a ``min_face_size`` face becomes
        ``DETECTOR_MIN_FACE`` px, never below ``MIN_VIEW`` px on the longer side, never enlarged."""
        longer = max(width, height)
        scale = max(DETECTOR_MIN_FACE / self.options.min_face_size, MIN_VIEW / longer)
        return min(1.0, scale, MAX_SIDE / longer)  # a photo over 3072 px: larger smallest face

    def detect(self, rgb: RGB, *, rotate: bool) -> list[Detection]:
        """Faces in the image, merged over detectors and orientations, largest first."""
        return Search(self, rgb).union(rotate=rotate)

    # -- landmarks -----------------------------------------------------------------------------
    def fit(self, rgb: RGB, det: Detection) -> MeshResult:
        """The mesh on a detection's crop, and (``refine``) again on the crop its landmarks give."""
        first_roi = roi_from_detection(det)
        result = self.mesh.run(rgb, first_roi)
        threshold = self.options.presence_threshold
        if self.options.refine:
            # the crop from the first pass's landmarks is better aligned; a second pass pays off when
            # it differs from the detector's crop (or rescues a face the first crop framed poorly)
            second_roi = roi_from_landmarks(result.points)
            if result.presence < threshold or misaligned(first_roi, second_roi):
                second = self.mesh.run(rgb, second_roi)
                if second.presence >= threshold:
                    result = second
        return result

    def accept(self, rgb: RGB, det: Detection, result: MeshResult) -> Face | None:
        """The Face for a fitted detection once verified, or None when it is not a face (or the mesh
        is fitted the wrong way round)."""
        evidence, as_turned = None, None
        threshold, need = self.options.presence_threshold, self.options.verify_threshold
        if self.verifier is not None and need > 0.0:
            checked = self.verifier.evidence(rgb, result.points, need)
            # not a face, or landmarks fitted the wrong way round (an upside-down face read upright)
            if checked.total < need or checked.upright is False:
                return None
            evidence, as_turned = checked.total, checked.center
        if result.presence < threshold and (
            evidence is None
            or self.verifier is None
            or not self.verifier.right_way_up(rgb, result.points, as_turned)
        ):
            # the mesh doubts the face (turned away, covered): kept only when verified, and only if
            # it is not fitted the wrong way round (CenterFace sees it best as the mesh turns it)
            return None
        return self.build_face(result.points, det.score, result.presence, evidence)

    def build_face(self, mesh: F32, score: float, presence: float, evidence: float | None = None) -> Face:
        """A Face from a (478, 3) mesh in image pixels: its 888 points, their box and the pose."""
        points = self.layout.build(mesh)
        lo, hi = points.min(axis=0), points.max(axis=0)
        box = Box(float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1]))
        return Face(
            box=box,
            score=score,
            points=points,
            mesh=mesh,
            pose=self.pose.estimate(mesh),
            presence=presence,
            evidence=evidence,
        )

    def best_face(self, rgb: RGB, det: Detection) -> Face | None:
        """The verified Face for a detection, trying its alternatives when the first crop fails
        (:meth:`Search.best_face`)."""
        return Search(self, rgb).best_face(det)


@dataclass(frozen=True)
class ModelRuns:
    """Model runs per model: what finding and landmarking the faces of a photo cost."""

    full_range: int = 0
    short_range: int = 0
    mesh: int = 0
    centerface: int = 0

    def __sub__(self, other: ModelRuns) -> ModelRuns:
        return ModelRuns(
            self.full_range - other.full_range,
            self.short_range - other.short_range,
            self.mesh - other.mesh,
            self.centerface - other.centerface,
        )


class Search:
    """One photo's face search: each detector view is computed at most once, on first use, and each
    detection is landmarked and verified at most once (the cascade's stages share what earlier ones
    ran). Detections are in image pixels."""

    def __init__(self, pipeline: FacePipeline, rgb: RGB) -> None:
        self.pipeline = pipeline
        self.rgb = rgb
        self._views: dict[int, RGB] = {}
        self._found: dict[tuple[str, int], list[Detection]] = {}
        self._weak: list[Detection] = []
        self._fits: dict[Roi, MeshResult] = {}
        self._fitted: list[Detection] = []
        self._faces: dict[Roi, Face | None] = {}

    # -- detector views ------------------------------------------------------------------------
    def view(self, k: int = 0) -> RGB:
        """The detectors' view (the image scaled by ``view_scale``) turned by ``k`` quarter turns."""
        if k not in self._views:
            if k == 0:
                height, width = self.rgb.shape[:2]
                self._views[0] = resize_view(self.rgb, self.pipeline.view_scale(width, height))
            else:
                self._views[k] = np.asarray(cv2.rotate(self.view(0), _CV2_ROTATIONS[k]), dtype=np.uint8)
        return self._views[k]

    def full_range(self, k: int = 0) -> list[Detection]:
        """Full-range detections (score ≥ ``score_threshold``) on the view turned by ``k``."""
        key = ("full", k)
        if key not in self._found:
            weak = WEAK_SCORE if k == 0 else None
            threshold = self.pipeline.options.score_threshold
            dets, faint = self.pipeline.detector.detect_with_weak(
                self.view(k), score_threshold=threshold, weak_threshold=weak
            )
            self._found[key] = self._to_image(dets, k)
            if k == 0:
                self._weak = self._to_image(faint, 0)
        return self._found[key]

    def ran(self, family: str, k: int = 0) -> bool:
        """Whether a family's view ("full", "short", "center") turned by ``k`` has run."""
        return (family, k) in self._found

    def weak(self) -> list[Detection]:
        """Full-range detections too faint to propose a face (scores in [:data:`WEAK_SCORE`,
        ``score_threshold``)) on the upright view, away from its proposals: where a face may hide."""
        self.full_range(0)
        return self._weak

    def short_range(self, k: int = 0) -> list[Detection]:
        """BlazeFace short-range on the view (letterboxed to 128²) turned by ``k``."""
        key = ("short", k)
        if key not in self._found:
            model = self.pipeline.short_range
            threshold = self.pipeline.options.score_threshold
            dets = model.detect(self.view(k), score_threshold=threshold) if model is not None else []
            self._found[key] = self._to_image(dets, k)
        return self._found[key]

    def centerface(self, k: int = 0) -> list[Detection]:
        """CenterFace over the view turned by ``k`` (``thorough`` profile only; else nothing)."""
        key = ("center", k)
        if key not in self._found:
            pipeline = self.pipeline
            model = pipeline.centerface
            dets: list[Detection] = []
            if model is not None and pipeline.options.detector != "fast":
                view = self.view(k)
                height, width = self.rgb.shape[:2]
                scale = pipeline.view_scale(width, height)
                # CenterFace needs no more than min_face_size → DETECTOR_MIN_FACE px (no 192 px floor)
                cf_scale = min(
                    scale,
                    max(
                        DETECTOR_MIN_FACE / pipeline.options.min_face_size,
                        CENTERFACE_MIN_VIEW / max(width, height),
                    ),
                )
                coarse = resize_view(view, cf_scale / scale)
                back = np.array(
                    [view.shape[1] / coarse.shape[1], view.shape[0] / coarse.shape[0]], np.float32
                )
                dets = [
                    Detection(
                        d.score,
                        (d.box[0] * back[0], d.box[1] * back[1], d.box[2] * back[0], d.box[3] * back[1]),
                        d.keypoints * back,
                    )
                    for d in model.detect(coarse, score_threshold=pipeline.options.score_threshold)
                ]
            self._found[key] = self._to_image(dets, k)
        return self._found[key]

    def _to_image(self, dets: list[Detection], k: int) -> list[Detection]:
        """Detections on the view turned by ``k`` mapped back to the image's pixels."""
        height, width = self.rgb.shape[:2]
        sh, sw = self.view(0).shape[:2]
        factor = np.array([width / sw, height / sh], np.float32)
        out = []
        for det in dets:
            x0, y0, x1, y1 = det.box
            corners = to_original(np.array([[x0, y0], [x1, y1]], np.float32), k, sw, sh) * factor
            lo, hi = corners.min(axis=0), corners.max(axis=0)
            box = (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))
            out.append(Detection(det.score, box, to_original(det.keypoints, k, sw, sh) * factor))
        return out

    def union(self, *, rotate: bool) -> list[Detection]:
        """The thorough search: every family on every orientation, merged, largest first. BlazeFace's
        detections by score, CenterFace's where BlazeFace has none; in a turned view CenterFace runs
        only where BlazeFace saw a face (a photo turned as a whole turns all of its faces)."""
        found: list[Detection] = []
        second: list[Detection] = []
        for k in range(4) if rotate else (0,):
            blaze = self.full_range(k) + self.short_range(k)
            found += blaze
            if k == 0 or blaze:
                second += self.centerface(k)
        return merge(found, self.pipeline.options.nms_iou, second)

    # -- landmarks -----------------------------------------------------------------------------
    def fit(self, det: Detection) -> MeshResult:
        """:meth:`FacePipeline.fit`, once per crop."""
        roi = roi_from_detection(det)
        if roi not in self._fits:
            self._fits[roi] = self.pipeline.fit(self.rgb, det)
            self._fitted.append(det)
        return self._fits[roi]

    def fitted_first(self, det: Detection) -> Detection:
        """``det``, or a detection of the same face (one of its alternatives, or one overlapping it by
        :data:`ALTERNATIVE_IOU`) whose crop was already fitted, with ``det`` and its alternatives as
        the alternatives: the work done is reused, not repeated."""
        if roi_from_detection(det) in self._fits:
            return det
        box = np.array(det.box, np.float32)
        for other in (*det.alternatives, *self._fitted):
            if roi_from_detection(other) not in self._fits:
                continue
            alternative = any(other is a for a in det.alternatives)
            if alternative or iou(box, np.array([other.box], np.float32))[0] >= ALTERNATIVE_IOU:
                rest = (replace(det, alternatives=()), *(a for a in det.alternatives if a is not other))
                return replace(other, alternatives=rest)
        return det

    def landmark(self, det: Detection) -> Face | None:
        """:meth:`FacePipeline.fit` then :meth:`FacePipeline.accept` (verification), once per crop: a
        verified Face for one detection, or None when there is no face there."""
        roi = roi_from_detection(det)
        if roi not in self._faces:
            self._faces[roi] = self.pipeline.accept(self.rgb, det, self.fit(det))
        return self._faces[roi]

    def best_face(self, det: Detection) -> Face | None:
        """:meth:`landmark` on a detection, trying its alternatives when the first crop fails."""
        face = self.landmark(det)
        doubted = self.pipeline.options.presence_threshold
        for other in det.alternatives if face is None or face.presence < doubted else ():
            # a poorly framed first crop: another detection of the face may frame it better
            alt = self.landmark(other)
            if alt is not None and (face is None or alt.presence > face.presence):
                face = alt
                if face.presence >= doubted:
                    break
        return face


def misaligned(a: Roi, b: Roi) -> bool:
    """Whether two crops of one face differ enough for a second mesh pass to be worth it."""
    size = max(b.size, 1e-6)
    shift = math.hypot(a.cx - b.cx, a.cy - b.cy) / size
    turn = abs(math.remainder(a.angle - b.angle, 2 * math.pi))
    return shift > REFINE_SHIFT or abs(a.size / size - 1.0) > REFINE_SCALE or turn > REFINE_TURN


def merge(found: list[Detection], threshold: float, second: list[Detection] | None = None) -> list[Detection]:
    """Greedy NMS across detectors and orientations, then largest first: BlazeFace's detections by
    score, then the second family's (``second``) where they overlap none kept."""
    ranked = sorted(found, key=lambda d: d.score, reverse=True)
    ranked += sorted(second or [], key=lambda d: d.score, reverse=True)
    if not ranked:
        return []
    boxes = np.array([d.box for d in ranked], np.float32)
    keep: list[Detection] = []
    alive = np.ones(len(ranked), bool)
    for i, det in enumerate(ranked):
        if not alive[i]:
            continue
        # also drop boxes mostly inside a kept one (a part of the same face)
        same = (iou(boxes[i], boxes) >= threshold) | (overlap(boxes[i], boxes, over_smaller=True) >= NESTED)
        members = [ranked[j] for j in np.flatnonzero(same & alive) if j != i]
        alive &= ~same
        others = [m for m in members if iou(boxes[i], np.array([m.box], np.float32))[0] < ALTERNATIVE_IOU]
        keep.append(replace(det, alternatives=tuple(others[:MAX_ALTERNATIVES])))
    keep.sort(key=lambda d: d.size, reverse=True)
    return keep


def overlaps(a: Box, b: Box) -> bool:
    """Whether two face boxes are one face (one mostly inside the other)."""
    return _box_overlap(a, b) > NESTED


def _box_overlap(a: Box, b: Box) -> float:
    """Intersection over the smaller area of two face boxes."""
    boxes = np.array([[b.x, b.y, b.x + b.width, b.y + b.height]], np.float32)
    return float(
        overlap(np.array([a.x, a.y, a.x + a.width, a.y + a.height], np.float32), boxes, over_smaller=True)[0]
    )
