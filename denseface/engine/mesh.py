"""MediaPipe Face Mesh v2 (478 points incl. iris) on LiteRT.

The face is cut out as a rotated square region of interest (:class:`Roi`), warped to the model's
256×256 input, and the 478×3 output is mapped back to image pixels with the same affine transform.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from denseface.engine.detector import Detection
from denseface.engine.runtime import invoke, load_interpreter

F32 = npt.NDArray[np.float32]

ROI_SCALE = 1.5  # MediaPipe's face crop: 1.5× the face's long side
EYE_OUTER = (33, 263)  # mesh vertices that define the in-plane rotation (image-left, image-right eye)


@dataclass(frozen=True)
class Roi:
    """A square crop: centre (image pixels), side length, rotation (radians; the crop's x axis
    points along (cos a, sin a) in the image)."""

    cx: float
    cy: float
    size: float
    angle: float

    def crop_to_image(self, side: int) -> F32:
        """2×3 affine matrix mapping crop pixels (0..side) to image pixels."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        k = self.size / side
        half = side / 2.0
        return np.array(
            [
                [c * k, -s * k, self.cx - (c * half - s * half) * k],
                [s * k, c * k, self.cy - (s * half + c * half) * k],
            ],
            np.float32,
        )


def roi_from_detection(det: Detection, scale: float = ROI_SCALE) -> Roi:
    x0, y0, x1, y1 = det.box
    (ex0, ey0), (ex1, ey1) = det.keypoints[0], det.keypoints[1]
    angle = math.atan2(float(ey1 - ey0), float(ex1 - ex0))
    size = max(x1 - x0, y1 - y0) * scale
    return Roi((x0 + x1) / 2.0, (y0 + y1) / 2.0, size, angle)


def roi_from_landmarks(points: F32, scale: float = ROI_SCALE) -> Roi:
    """The tracking ROI: the landmarks' box measured in the face's own rotated frame."""
    (ax, ay), (bx, by) = points[EYE_OUTER[0], :2], points[EYE_OUTER[1], :2]
    angle = math.atan2(float(by - ay), float(bx - ax))
    c, s = math.cos(angle), math.sin(angle)
    xy = points[:, :2].astype(np.float64)
    # rotate into the face frame, take the box there, rotate its centre back
    u = xy[:, 0] * c + xy[:, 1] * s
    v = -xy[:, 0] * s + xy[:, 1] * c
    cu, cv = (u.min() + u.max()) / 2.0, (v.min() + v.max()) / 2.0
    size = max(u.max() - u.min(), v.max() - v.min()) * scale
    return Roi(float(cu * c - cv * s), float(cu * s + cv * c), float(size), angle)


@dataclass(frozen=True)
class MeshResult:
    points: F32  # (478, 3) image pixels; z scaled like x
    presence: float  # face presence probability in the crop


class FaceMesh:
    """Face Mesh v2. Not thread-safe: use one instance per thread."""

    def __init__(self, model_path: Path, *, num_threads: int = 1) -> None:
        self._interp = load_interpreter(model_path, num_threads)
        inp = self._interp.get_input_details()[0]
        self._input_index = inp["index"]
        self.side = int(inp["shape"][1])
        outputs = self._interp.get_output_details()
        by_size = {int(np.prod(d["shape"])): d["index"] for d in outputs}
        self._landmarks_index = by_size[478 * 3]
        presence = [d for d in outputs if d["name"] == "Identity_1"] or [
            d for d in outputs if int(np.prod(d["shape"])) == 1
        ]
        self._presence_index = presence[0]["index"]
        self.runs = 0  # model runs made: what a photo costs

    def run(self, rgb: npt.NDArray[np.uint8], roi: Roi) -> MeshResult:
        matrix = roi.crop_to_image(self.side)
        crop = cv2.warpAffine(
            rgb,
            matrix,
            (self.side, self.side),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0, 0, 0),
        )
        tensor = crop.astype(np.float32) * (1.0 / 255.0)
        self._interp.set_tensor(self._input_index, tensor[None])
        invoke(self._interp, "face mesh")
        self.runs += 1
        raw = self._interp.get_tensor(self._landmarks_index).reshape(478, 3)
        logit = float(self._interp.get_tensor(self._presence_index).reshape(-1)[0])
        xy = raw[:, :2] @ matrix[:, :2].T + matrix[:, 2]
        z = raw[:, 2:3] * (roi.size / self.side)
        points = np.concatenate([xy, z], axis=1).astype(np.float32)
        return MeshResult(points, 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, logit)))))
