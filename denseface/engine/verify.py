"""Is it really a face? A second opinion on the aligned crop, from two detector families.

The full-range detector fires now and then on a cat, a colour wheel or a blurred clock, and Face
Mesh cannot tell: it fits a face to anything (presence 0.99 on a colour wheel). Once the mesh has
placed the face, the crop around it is cut again, upright and centred (the face's long side × 2.0;
where the face is cut by the photo's frame, the crop mirrors what is inside, as a face nearly is),
and two detectors look at it:

* BlazeFace short-range (128², already loaded; 1.4 ms) — its score for a face at the centre;
* CenterFace (96², ONNX Runtime; ≈ 1.5 ms) — its heatmap peak at the centre. A different architecture
  trained on different data (WIDER FACE), so the two rarely agree on a non-face.

The evidence is the sum of the two scores and a face is kept when it reaches the threshold (default
1.10, chosen on the tuning photos' curve by ``benchmarks/precision.py``: the lowest threshold that
leaves no false face on them, as the strongest false face, 1.02, a cartoon penguin, now scores above
the weakest real face). Neither detector alone separates the two: a masked face scores as low on
BlazeFace as a colour wheel, and CenterFace misses masks, but few non-faces convince both.
CenterFace runs only when BlazeFace alone falls short of the threshold (its score can only add); at
a threshold above 1 that is always.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from denseface.engine.centerface import CenterFace, centre_peak, decode
from denseface.engine.detector import Detection, FaceDetector
from denseface.engine.mesh import ROI_SCALE, Roi, roi_from_landmarks

CROP_SCALE = 2.0  # crop side / the face's long side (the mesh crop is 1.5)
BLAZE_SIDE = 128  # the short-range detector's input
CENTER_SIDE = 96  # CenterFace's input (a multiple of 32)
CENTRE = 0.15  # a BlazeFace box whose centre lies within ± this fraction of the side counts
FLOOR = 0.05  # BlazeFace scores below this are read as 0
UPRIGHT = math.radians(60.0)  # eyes → mouth within this of the crop's down axis: the mesh is upright


@dataclass(frozen=True)
class Evidence:
    """The verification scores of one face: ``total`` = ``blaze`` + ``center`` (0 when not run).

    ``upright``: whether the detector that scored higher sees the face the way the mesh does (its
    eyes above its mouth in the mesh-aligned crop); ``None`` when neither located the face."""

    blaze: float
    center: float | None
    upright: bool | None = None

    @property
    def total(self) -> float:
        return self.blaze + (self.center or 0.0)


def upright(keypoints: npt.NDArray[np.float32]) -> bool:
    """Whether eyes (keypoints 0, 1) sit above the mouth (3) in the crop, within :data:`UPRIGHT`."""
    down = keypoints[3] - (keypoints[0] + keypoints[1]) / 2.0
    return bool(down[1] > 0 and abs(math.atan2(float(down[0]), float(down[1]))) <= UPRIGHT)


def _central(dets: list[Detection], side: int) -> Detection | None:
    """The best-scoring detection whose box centre lies near the middle of a square crop."""
    middle, reach = side / 2.0, CENTRE * side
    near = [
        d
        for d in dets
        if abs((d.box[0] + d.box[2]) / 2.0 - middle) <= reach
        and abs((d.box[1] + d.box[3]) / 2.0 - middle) <= reach
    ]
    return max(near, key=lambda d: d.score, default=None)


def _crop(rgb: npt.NDArray[np.uint8], roi: Roi, side: int) -> npt.NDArray[np.uint8]:
    return np.asarray(
        cv2.warpAffine(
            rgb,
            roi.crop_to_image(side),
            (side, side),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REFLECT_101,
        ),
        dtype=np.uint8,
    )


class FaceVerifier:
    """Scores a landmarked face with two detectors on its aligned crop. Not thread-safe."""

    def __init__(self, short_range: FaceDetector, centerface: CenterFace) -> None:
        self.short_range = short_range
        self.centerface = centerface

    @staticmethod
    def crop_roi(mesh: npt.NDArray[np.float32]) -> Roi:
        """The upright, centred verification crop around a mesh (478 × 3, image pixels)."""
        roi = roi_from_landmarks(mesh)
        return Roi(roi.cx, roi.cy, roi.size / ROI_SCALE * CROP_SCALE, roi.angle)

    def blaze(self, rgb: npt.NDArray[np.uint8], roi: Roi) -> Detection | None:
        """BlazeFace short-range's detection at the middle of the crop, if any."""
        dets = self.short_range.detect(_crop(rgb, roi, BLAZE_SIDE), score_threshold=FLOOR)
        return _central(dets, BLAZE_SIDE)

    def blaze_score(self, rgb: npt.NDArray[np.uint8], roi: Roi) -> float:
        det = self.blaze(rgb, roi)
        return det.score if det is not None else 0.0

    def center(self, rgb: npt.NDArray[np.uint8], roi: Roi) -> tuple[float, Detection | None]:
        """CenterFace's heatmap peak at the middle of the crop, and its detection there (if any)."""
        outputs = self.centerface.run(_crop(rgb, roi, CENTER_SIDE))
        return centre_peak(outputs[0], CENTER_SIDE), _central(decode(outputs, FLOOR), CENTER_SIDE)

    def locate(self, rgb: npt.NDArray[np.uint8], roi: Roi) -> Detection | None:
        """CenterFace's detection at the middle of an upright crop (``roi.angle`` 0), in image pixels:
        a close look at a spot where a face may be."""
        det = self.center(rgb, roi)[1]
        if det is None:
            return None
        scale = roi.size / CENTER_SIDE
        x0, y0 = roi.cx - roi.size / 2.0, roi.cy - roi.size / 2.0
        a, b, c, d = (float(v) * scale for v in det.box)
        offset = np.array([x0, y0], np.float32)
        keypoints = det.keypoints * np.float32(scale) + offset
        return Detection(det.score, (x0 + a, y0 + b, x0 + c, y0 + d), keypoints)

    def center_score(self, rgb: npt.NDArray[np.uint8], roi: Roi) -> float:
        return self.center(rgb, roi)[0]

    def right_way_up(
        self, rgb: npt.NDArray[np.uint8], mesh: npt.NDArray[np.float32], as_turned: float | None = None
    ) -> bool:
        """Whether CenterFace sees the face best in the crop as the mesh turns it, rather than a
        quarter, half or three-quarter turn from it: a mesh fitted upside down or sideways fails.
        ``as_turned``: CenterFace's score of the crop as the mesh turns it, when already known (the
        ``center`` of :meth:`evidence`), so that run is not repeated."""
        roi = self.crop_roi(mesh)
        turns = [Roi(roi.cx, roi.cy, roi.size, roi.angle + k * math.pi / 2) for k in range(1, 4)]
        first = as_turned if as_turned is not None else self.center_score(rgb, roi)
        return first >= max(self.center_score(rgb, turned) for turned in turns)

    def evidence(self, rgb: npt.NDArray[np.uint8], mesh: npt.NDArray[np.float32], need: float) -> Evidence:
        """Both scores (only BlazeFace's when it reaches ``need`` by itself) and the orientation check."""
        roi = self.crop_roi(mesh)
        blaze = self.blaze(rgb, roi)
        blaze_score = blaze.score if blaze is not None else 0.0
        if blaze is not None and blaze_score >= need:
            return Evidence(blaze_score, None, upright(blaze.keypoints))
        center_score, center = self.center(rgb, roi)
        seen = max((d for d in (blaze, center) if d is not None), key=lambda d: d.score, default=None)
        return Evidence(blaze_score, center_score, None if seen is None else upright(seen.keypoints))
