"""Detection → mesh → 888 points, for one RGB image.

Finding faces: the full-range detector sees the whole image letterboxed to 192², and so does
the short-range one (128², cheap, better on large close-up faces); for images too large for
the full-range model to see faces of ``min_face_size``, it also sees overlapping tiles.
With ``rotate`` the same search runs on the image turned by 90°, 180° and 270° and everything
is mapped back and merged.
Landmarking: Face Mesh v2 on a rotated square crop around each detection, then (``refine``) a second
pass on the crop derived from the first pass's landmarks, as MediaPipe's tracker does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from denseface.engine.detector import Detection, FaceDetector, iou, overlap
from denseface.engine.layout import Layout
from denseface.engine.mesh import FaceMesh, MeshResult, Roi, roi_from_detection, roi_from_landmarks
from denseface.engine.pose import PoseEstimator
from denseface.engine.result import Box, Face
from denseface.engine.verify import FaceVerifier

F32 = npt.NDArray[np.float32]
RGB = npt.NDArray[np.uint8]

# np.rot90(image, k) as OpenCV rotations (much faster than a numpy copy of a rotated view)
_CV2_ROTATIONS = {1: cv2.ROTATE_90_COUNTERCLOCKWISE, 2: cv2.ROTATE_180, 3: cv2.ROTATE_90_CLOCKWISE}

DETECTOR_MIN_FACE = (
    10.0  # px in the 192² input: the full-range model finds faces down to 7–8 px (measured; margin kept)
)
TILE_OVERLAP = 0.25
LARGEST_MARGIN = 0.8  # Mode 1 compares final boxes of detections at least this size of the largest
NESTED = 0.6  # a face box this much inside another (intersection / smaller area) is the same face
# second mesh pass only when the landmark crop moved more than this from the detector crop
REFINE_SHIFT = 0.04  # of the crop side
REFINE_SCALE = 0.08
REFINE_TURN = math.radians(4.0)
# chosen on the curve of benchmarks/precision.py (tuning photos only; see README "Precision")
VERIFY_THRESHOLD = 1.01


@dataclass(frozen=True)
class PipelineOptions:
    min_face_size: float = 40.0  # smallest face (detector box side, image px) searched for by tiling
    score_threshold: float = 0.5  # detector score
    presence_threshold: float = 0.5  # mesh face-presence probability
    refine: bool = True  # second mesh pass on the landmark-derived crop
    nms_iou: float = 0.3
    # a face is kept when the two detectors' scores on its aligned crop add up to this (0: no check)
    verify_threshold: float = VERIFY_THRESHOLD


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


def tiles(width: int, height: int, side: int) -> list[tuple[int, int, int, int]]:
    """Overlapping square-ish tiles (x0, y0, x1, y1) covering the image."""

    def starts(extent: int) -> list[int]:
        if extent <= side:
            return [0]
        count = math.ceil((extent - side) / (side * (1 - TILE_OVERLAP))) + 1
        step = (extent - side) / (count - 1)
        return [round(i * step) for i in range(count)]

    return [
        (x, y, min(x + side, width), min(y + side, height)) for y in starts(height) for x in starts(width)
    ]


class FacePipeline:
    """Owns one detector, one mesh model and the layout. Not thread-safe."""

    def __init__(
        self,
        detector: FaceDetector,
        mesh: FaceMesh,
        layout: Layout,
        pose: PoseEstimator,
        options: PipelineOptions | None = None,
        short_range: FaceDetector | None = None,
        verifier: FaceVerifier | None = None,
    ) -> None:
        self.detector = detector
        self.short_range = short_range
        self.verifier = verifier
        self.mesh = mesh
        self.layout = layout
        self.pose = pose
        self.options = options or PipelineOptions()

    # -- finding faces -------------------------------------------------------------------------
    def _detect_upright(self, img: RGB, tile_side: int | None) -> list[Detection]:
        """Detections in ``img`` (already downscaled), in its own pixel frame."""
        threshold = self.options.score_threshold
        found = self.detector.detect(img, score_threshold=threshold)
        if self.short_range is not None:  # 1.4 ms; better on large, close and partly cut-off faces
            found += self.short_range.detect(img, score_threshold=threshold)
        if tile_side is not None:
            height, width = img.shape[:2]
            for x0, y0, x1, y1 in tiles(width, height, tile_side):
                offset = np.array([x0, y0], np.float32)
                for det in self.detector.detect(img[y0:y1, x0:x1], score_threshold=threshold):
                    box = (det.box[0] + x0, det.box[1] + y0, det.box[2] + x0, det.box[3] + y0)
                    found.append(Detection(det.score, box, det.keypoints + offset))
        return found

    def detect(self, rgb: RGB, *, rotate: bool) -> list[Detection]:
        """Faces in the image, merged over tiles and orientations, largest first."""
        height, width = rgb.shape[:2]
        size = self.detector.spec.input_size
        # a tile of this many image pixels shows a face of min_face_size at the detector's limit
        side = self.options.min_face_size * size / DETECTOR_MIN_FACE
        tiled = max(width, height) > side * 1.1
        # one downscale serves the whole view, every tile (each exactly the detector's input) and
        # every orientation
        scale = min(1.0, size / side if tiled else size / max(width, height))
        small = rgb
        if scale < 1.0:
            dims = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = np.asarray(cv2.resize(rgb, dims, interpolation=cv2.INTER_AREA), dtype=np.uint8)
        sh, sw = small.shape[:2]
        found: list[Detection] = []
        for k in range(4) if rotate else (0,):
            view = small if k == 0 else np.asarray(cv2.rotate(small, _CV2_ROTATIONS[k]), dtype=np.uint8)
            for det in self._detect_upright(view, size if tiled else None):
                x0, y0, x1, y1 = det.box
                corners = to_original(np.array([[x0, y0], [x1, y1]], np.float32), k, sw, sh) / scale
                lo, hi = corners.min(axis=0), corners.max(axis=0)
                box = (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))
                found.append(Detection(det.score, box, to_original(det.keypoints, k, sw, sh) / scale))
        return _merge(found, self.options.nms_iou)

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
            if result.presence < threshold or _misaligned(first_roi, second_roi):
                second = self.mesh.run(rgb, second_roi)
                if second.presence >= threshold:
                    result = second
        if result.presence < threshold:
            return None
        evidence = None
        need = self.options.verify_threshold
        if self.verifier is not None and need > 0.0:
            evidence = self.verifier.evidence(rgb, result.points, need).total
            if evidence < need:
                return None
        return self._face(det, result, evidence)

    def _face(self, det: Detection, result: MeshResult, evidence: float | None = None) -> Face:
        points = self.layout.build(result.points)
        lo, hi = points.min(axis=0), points.max(axis=0)
        box = Box(float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1]))
        return Face(
            box=box,
            score=det.score,
            points=points,
            mesh=result.points,
            pose=self.pose.estimate(result.points),
            presence=result.presence,
            evidence=evidence,
        )

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
            face = self.landmark(rgb, det)
            if face is None or any(_box_overlap(face.box, f.box) > NESTED for f in faces):
                continue
            faces.append(face)
            if len(faces) >= max_faces:
                break
        faces.sort(key=lambda f: f.box.width * f.box.height, reverse=True)
        return faces


def _misaligned(a: Roi, b: Roi) -> bool:
    """Whether two crops of one face differ enough for a second mesh pass to be worth it."""
    size = max(b.size, 1e-6)
    shift = math.hypot(a.cx - b.cx, a.cy - b.cy) / size
    turn = abs(math.remainder(a.angle - b.angle, 2 * math.pi))
    return shift > REFINE_SHIFT or abs(a.size / size - 1.0) > REFINE_SCALE or turn > REFINE_TURN


def _merge(found: list[Detection], threshold: float) -> list[Detection]:
    """Greedy NMS across tiles and orientations (best score wins), then largest first."""
    if not found:
        return []
    found = sorted(found, key=lambda d: d.score, reverse=True)
    boxes = np.array([d.box for d in found], np.float32)
    keep: list[Detection] = []
    alive = np.ones(len(found), bool)
    for i, det in enumerate(found):
        if not alive[i]:
            continue
        keep.append(det)
        # also drop boxes mostly inside a better one (a tile that saw only part of a face)
        alive &= (iou(boxes[i], boxes) < threshold) & (overlap(boxes[i], boxes, over_smaller=True) < NESTED)
    keep.sort(key=lambda d: d.size, reverse=True)
    return keep


def _box_overlap(a: Box, b: Box) -> float:
    """Intersection over the smaller area of two face boxes."""
    boxes = np.array([[b.x, b.y, b.x + b.width, b.y + b.height]], np.float32)
    return float(
        overlap(np.array([a.x, a.y, a.x + a.width, a.y + a.height], np.float32), boxes, over_smaller=True)[0]
    )
