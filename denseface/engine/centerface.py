"""CenterFace (an anchor-free face detector trained on WIDER FACE) on OpenCV's DNN module.

A second, independent family beside BlazeFace: a different architecture, different training data,
so the two rarely fire on the same non-face. The ONNX graph takes RGB in 0..255 (NCHW, any size
that is a multiple of 32) and returns, at stride 4, a face-centre heatmap, box scales, centre
offsets and five landmarks. Here it answers one question: how strongly does it see a face centred
in an aligned crop (:meth:`CenterFace.centre_score`).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from denseface.errors import InferenceError, ModelsMissingError

OUTPUTS = ("537", "538", "539", "540")  # heatmap, scale, offset, landmarks
STRIDE = 4
CENTRE = 0.2  # the centre window: ± this fraction of the side around the middle


class CenterFace:
    """CenterFace on OpenCV DNN. Not thread-safe: use one instance per thread."""

    def __init__(self, model_path: Path) -> None:
        try:
            self._net = cv2.dnn.readNetFromONNX(str(model_path))
        except cv2.error as exc:
            raise ModelsMissingError(
                f"cannot load {model_path}: {exc}; run `denseface models fetch --force`"
            ) from exc

    def heatmap(self, rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """Face-centre probability per 4×4 cell of an RGB image whose sides are multiples of 32."""
        height, width = rgb.shape[:2]
        if height % 32 or width % 32:
            raise ValueError(f"CenterFace input sides must be multiples of 32, not {width}x{height}")
        blob = cv2.dnn.blobFromImage(rgb, 1.0, (width, height), (0.0, 0.0, 0.0), swapRB=False, crop=False)
        try:
            self._net.setInput(blob)
            outputs = self._net.forward(list(OUTPUTS))
        except cv2.error as exc:
            raise InferenceError("the CenterFace model failed to run; retry the request") from exc
        return np.asarray(outputs[0], dtype=np.float32).reshape(height // STRIDE, width // STRIDE)

    def centre_score(self, crop: npt.NDArray[np.uint8]) -> float:
        """The strongest face centre near the middle of a square crop (0..1)."""
        heat = self.heatmap(crop)
        side = heat.shape[0]
        lo, hi = round(side * (0.5 - CENTRE)), round(side * (0.5 + CENTRE)) + 1
        return float(heat[lo:hi, lo:hi].max())
