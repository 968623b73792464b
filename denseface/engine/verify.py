"""Is it really a face? A second opinion on the aligned crop, from two detector families.

The full-range detector fires now and then on a cat, a colour wheel or a blurred clock, and Face
Mesh cannot tell: it fits a face to anything (presence 0.99 on a colour wheel). Once the mesh has
placed the face, the crop around it is cut again, upright and centred (the face's long side × 2.0),
and two detectors look at it:

* BlazeFace short-range (128², already loaded; 1.4 ms) — its score for a face at the centre;
* CenterFace (96², OpenCV DNN; ≈ 3 ms) — its heatmap peak at the centre. A different architecture
  trained on different data (WIDER FACE), so the two rarely agree on a non-face.

The evidence is the sum of the two scores and a face is kept when it reaches the threshold (default
1.01, chosen on the tuning photos' curve by ``benchmarks/precision.py``: midway between the strongest
false face, 0.886, and the weakest real face, 1.137). Neither detector alone separates the two: a
masked face scores as low on BlazeFace as a colour wheel, and CenterFace misses masks, but no
non-face here convinces both. CenterFace runs only when BlazeFace alone falls short of the
threshold (its score can only add); at a threshold above 1 that is always.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from denseface.engine.centerface import CenterFace
from denseface.engine.detector import FaceDetector
from denseface.engine.mesh import ROI_SCALE, Roi, roi_from_landmarks

CROP_SCALE = 2.0  # crop side / the face's long side (the mesh crop is 1.5)
BLAZE_SIDE = 128  # the short-range detector's input
CENTER_SIDE = 96  # CenterFace's input (a multiple of 32)
CENTRE = 0.15  # a BlazeFace box whose centre lies within ± this fraction of the side counts
FLOOR = 0.05  # BlazeFace scores below this are read as 0


@dataclass(frozen=True)
class Evidence:
    """The verification scores of one face: ``total`` = ``blaze`` + ``center`` (0 when not run)."""

    blaze: float
    center: float | None

    @property
    def total(self) -> float:
        return self.blaze + (self.center or 0.0)


def _crop(rgb: npt.NDArray[np.uint8], roi: Roi, side: int) -> npt.NDArray[np.uint8]:
    return np.asarray(
        cv2.warpAffine(
            rgb,
            roi.crop_to_image(side),
            (side, side),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0, 0, 0),
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

    def blaze_score(self, rgb: npt.NDArray[np.uint8], roi: Roi) -> float:
        crop = _crop(rgb, roi, BLAZE_SIDE)
        middle = BLAZE_SIDE / 2.0
        best = 0.0
        for det in self.short_range.detect(crop, score_threshold=FLOOR):
            cx, cy = (det.box[0] + det.box[2]) / 2.0, (det.box[1] + det.box[3]) / 2.0
            if abs(cx - middle) <= CENTRE * BLAZE_SIDE and abs(cy - middle) <= CENTRE * BLAZE_SIDE:
                best = max(best, det.score)
        return best

    def center_score(self, rgb: npt.NDArray[np.uint8], roi: Roi) -> float:
        return self.centerface.centre_score(_crop(rgb, roi, CENTER_SIDE))

    def evidence(self, rgb: npt.NDArray[np.uint8], mesh: npt.NDArray[np.float32], need: float) -> Evidence:
        """Both scores, or only BlazeFace's when it reaches ``need`` by itself."""
        roi = self.crop_roi(mesh)
        blaze = self.blaze_score(rgb, roi)
        if blaze >= need:
            return Evidence(blaze, None)
        return Evidence(blaze, self.center_score(rgb, roi))
