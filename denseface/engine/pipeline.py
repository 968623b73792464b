"""Detection → mesh → verification → 888 points, for one RGB image.

Finding faces: the full-range detector runs once over the whole image, scaled so that a face of
``min_face_size`` is :data:`DETECTOR_MIN_FACE` px in its input (the model runs at any size; see
``full_range.py``), and the short-range one sees it letterboxed to 128² (cheap, better on large
close-up faces). The ``thorough`` profile (the default) also runs CenterFace over the same view: a
second family that finds faces turned away, covered or in crowds that BlazeFace misses; its
detections count where BlazeFace has none. With ``rotate`` the search runs on the image turned by
90°, 180° and 270° too (CenterFace only where BlazeFace saw a face) and everything is mapped back and
merged; overlapping detections of one face are kept as alternatives to its best one.
Landmarking: Face Mesh v2 on a rotated square crop around each detection, then (``refine``) a second
pass on the crop derived from the first pass's landmarks, as MediaPipe's tracker does; when the crop
fails, an alternative detection's crop is tried. Every face is then verified on its aligned crop
(``verify.py``). A face whose mesh doubts it (presence < 0.5: turned away, covered) is kept only when
verified and when CenterFace sees it best the way the mesh turns it (not fitted upside down).
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


DETECTORS = ("fast", "thorough")


@dataclass(frozen=True)
class PipelineOptions:
    min_face_size: float = 40.0  # smallest face (detector box side, image px) searched for
    score_threshold: float = 0.4  # detector score (a proposal: every face is verified after)
    presence_threshold: float = 0.5  # mesh face-presence probability
    refine: bool = True  # second mesh pass on the landmark-derived crop
    nms_iou: float = 0.3
    # a face is kept when the two detectors' scores on its aligned crop add up to this (0: no check)
    verify_threshold: float = VERIFY_THRESHOLD
    # "fast": BlazeFace full-range + short-range; "thorough": also CenterFace over the whole view
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
    """Owns one detector, one mesh model and the layout. Not thread-safe."""

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

    # -- finding faces -------------------------------------------------------------------------
    def view_scale(self, width: int, height: int) -> float:
        """How much the full-range view shrinks the image: a ``min_face_size`` face becomes
        ``DETECTOR_MIN_FACE`` px, never below ``MIN_VIEW`` px on the longer side, never enlarged."""
        longer = max(width, height)
        scale = max(DETECTOR_MIN_FACE / self.options.min_face_size, MIN_VIEW / longer)
        return min(1.0, scale, MAX_SIDE / longer)  # a photo over 3072 px: larger smallest face

    def detect(self, rgb: RGB, *, rotate: bool) -> list[Detection]:
        """Faces in the image, merged over detectors and orientations, largest first."""
        height, width = rgb.shape[:2]
        scale = self.view_scale(width, height)
        # one downscale serves both detectors and every orientation
        small = resize_view(rgb, scale)
        sh, sw = small.shape[:2]
        sx, sy = width / sw, height / sh
        threshold = self.options.score_threshold
        # CenterFace needs no more than min_face_size → DETECTOR_MIN_FACE px (no 192 px floor)
        cf_scale = min(
            scale,
            max(DETECTOR_MIN_FACE / self.options.min_face_size, CENTERFACE_MIN_VIEW / max(width, height)),
        )
        found: list[Detection] = []
        second: list[Detection] = []  # another family's proposals: kept where BlazeFace has none
        thorough = self.centerface is not None and self.options.detector == "thorough"
        for k in range(4) if rotate else (0,):
            view = small if k == 0 else np.asarray(cv2.rotate(small, _CV2_ROTATIONS[k]), dtype=np.uint8)
            dets = self.detector.detect(view, score_threshold=threshold)
            if self.short_range is not None:  # 1.4 ms; better on large, close and partly cut-off faces
                dets += self.short_range.detect(view, score_threshold=threshold)
            blaze = len(dets)
            # turned, covered and crowded faces; in a turned view only where BlazeFace saw a face
            # (a photo turned as a whole turns all of its faces)
            if thorough and self.centerface is not None and (k == 0 or blaze):
                dets += self._centerface(view, cf_scale / scale, threshold)
            for i, det in enumerate(dets):
                x0, y0, x1, y1 = det.box
                corners = to_original(np.array([[x0, y0], [x1, y1]], np.float32), k, sw, sh)
                corners *= np.array([sx, sy], np.float32)
                lo, hi = corners.min(axis=0), corners.max(axis=0)
                box = (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))
                keypoints = to_original(det.keypoints, k, sw, sh) * np.array([sx, sy], np.float32)
                (found if i < blaze else second).append(Detection(det.score, box, keypoints))
        return _merge(found, self.options.nms_iou, second)

    def _centerface(self, view: RGB, scale: float, threshold: float) -> list[Detection]:
        """CenterFace's detections on the view scaled by ``scale`` (≤ 1), in the view's pixels."""
        if self.centerface is None:
            return []
        coarse = resize_view(view, scale)
        height, width = view.shape[:2]
        back = np.array([width / coarse.shape[1], height / coarse.shape[0]], np.float32)
        return [
            Detection(
                d.score,
                (d.box[0] * back[0], d.box[1] * back[1], d.box[2] * back[0], d.box[3] * back[1]),
                d.keypoints * back,
            )
            for d in self.centerface.detect(coarse, score_threshold=threshold)
        ]

    # -- landmarks -----------------------------------------------------------------------------
    def landmark(self, rgb: RGB, det: Detection) -> Face | None:
        """A Face for one detection, or None when the mesh says there is no face there."""
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
        evidence, as_turned = None, None
        need = self.options.verify_threshold
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
        return self._face(det, result, evidence)

    def _face(self, det: Detection, result: MeshResult, evidence: float | None = None) -> Face:
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
        """:meth:`landmark` on a detection, trying its alternatives when the first crop fails."""
        face = self.landmark(rgb, det)
        doubted = self.options.presence_threshold
        for other in det.alternatives if face is None or face.presence < doubted else ():
            # a poorly framed first crop: another detection of the face may frame it better
            alt = self.landmark(rgb, other)
            if alt is not None and (face is None or alt.presence > face.presence):
                face = alt
                if face.presence >= doubted:
                    break
        return face

    def run(self, rgb: RGB, *, max_faces: int, rotate: bool) -> list[Face]:
        """Up to ``max_faces`` faces, largest first (by the box of their 888 points)."""
        candidates = self.detect(rgb, rotate=rotate)
        if max_faces == 1 and candidates:
            # the largest face: landmark every candidate close in size to the largest detection
            biggest = candidates[0].size
            candidates = [d for d in candidates if d.size >= LARGEST_MARGIN * biggest]
            max_faces = len(candidates)
        faces: list[Face] = []
        for det in candidates:
            face = self.best_face(rgb, det)
            if face is None or any(overlaps(face.box, f.box) for f in faces):
                continue
            faces.append(face)
            if len(faces) >= max_faces:
                break
        faces.sort(key=lambda f: f.box.width * f.box.height, reverse=True)
        return faces


def misaligned(a: Roi, b: Roi) -> bool:
    """Whether two crops of one face differ enough for a second mesh pass to be worth it."""
    size = max(b.size, 1e-6)
    shift = math.hypot(a.cx - b.cx, a.cy - b.cy) / size
    turn = abs(math.remainder(a.angle - b.angle, 2 * math.pi))
    return shift > REFINE_SHIFT or abs(a.size / size - 1.0) > REFINE_SCALE or turn > REFINE_TURN


def _merge(
    found: list[Detection], threshold: float, second: list[Detection] | None = None
) -> list[Detection]:
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
