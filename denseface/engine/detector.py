"""BlazeFace face detectors on LiteRT: the full-range model (192², stride 4) and the short-range one
(128², strides 8/16), with MediaPipe's anchors, box decoding and weighted non-maximum suppression.

One class, configured per model by a :class:`DetectorSpec`. Detections are in image pixels of the
array passed in; keypoints are (right eye, left eye, nose tip, mouth, right ear, left ear) of the
*subject*, i.e. keypoint 0 is the eye on the image's left for an upright face.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from denseface.engine.runtime import invoke, load_interpreter

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class DetectorSpec:
    input_size: int
    strides: tuple[int, ...]
    anchors_per_cell: tuple[int, ...]  # per stride
    score_threshold: float
    nms_iou: float = 0.3


FULL_RANGE = DetectorSpec(input_size=192, strides=(4,), anchors_per_cell=(1,), score_threshold=0.5)
SHORT_RANGE = DetectorSpec(input_size=128, strides=(8, 16), anchors_per_cell=(2, 6), score_threshold=0.5)


@dataclass(frozen=True)
class Detection:
    """A face found by the detector, in image pixels."""

    score: float
    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    keypoints: F32  # (6, 2)
    #: other detections of the same face (other detectors, orientations), best first: another crop
    #: to try when this one's landmarks fail
    alternatives: tuple[Detection, ...] = ()

    @property
    def size(self) -> float:
        return max(self.box[2] - self.box[0], self.box[3] - self.box[1])


def make_anchors(spec: DetectorSpec) -> F32:
    """Anchor centres (N, 2) in [0, 1], in the model's output order."""
    rows = []
    for stride, per_cell in zip(spec.strides, spec.anchors_per_cell, strict=False):
        cells = spec.input_size // stride
        ys, xs = np.mgrid[0:cells, 0:cells]
        centres = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], axis=-1).reshape(-1, 1, 2)
        rows.append(np.repeat(centres, per_cell, axis=1).reshape(-1, 2))
    return np.concatenate(rows).astype(np.float32)


class FaceDetector:
    """BlazeFace on LiteRT. Not thread-safe: use one instance per thread."""

    def __init__(self, model_path: Path, spec: DetectorSpec = FULL_RANGE, *, num_threads: int = 1) -> None:
        self.spec = spec
        self._interp = load_interpreter(model_path, num_threads)
        inp = self._interp.get_input_details()[0]
        self._input_index = inp["index"]
        outs = sorted(self._interp.get_output_details(), key=lambda d: int(d["shape"][-1]), reverse=True)
        self._regressors_index = outs[0]["index"]
        self._scores_index = outs[1]["index"]
        self._anchors = make_anchors(spec)
        self.runs = 0  # model runs made: what a photo costs
        expected = (1, len(self._anchors), 16)
        if tuple(outs[0]["shape"]) != expected:
            raise ValueError(
                f"{model_path.name}: regressors of shape {outs[0]['shape']}, expected {expected}"
            )

    def detect(self, rgb: npt.NDArray[np.uint8], *, score_threshold: float | None = None) -> list[Detection]:
        """Faces in an RGB image (the whole image is letterboxed into the model input)."""
        height, width = rgb.shape[:2]
        size = self.spec.input_size
        scale = size / max(width, height)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        pad_x, pad_y = (size - new_w) / 2.0, (size - new_h) / 2.0
        resized = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_AREA)
        tensor = np.zeros((size, size, 3), np.float32)
        left, top = int(pad_x), int(pad_y)
        tensor[top : top + new_h, left : left + new_w] = resized.astype(np.float32) * (2.0 / 255.0) - 1.0
        self._interp.set_tensor(self._input_index, tensor[None])
        invoke(self._interp, "face detector")
        self.runs += 1
        raw = self._interp.get_tensor(self._regressors_index)[0]
        logits = self._interp.get_tensor(self._scores_index)[0, :, 0]
        threshold = self.spec.score_threshold if score_threshold is None else score_threshold
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"score_threshold must be in (0, 1), not {threshold}")
        keep = np.flatnonzero(logits >= math.log(threshold / (1.0 - threshold)))  # sigmoid(x) >= t
        if keep.size == 0:
            return []
        scores = (1.0 / (1.0 + np.exp(-np.clip(logits[keep], -80.0, 80.0)))).astype(np.float32)
        anchors = self._anchors[keep]
        reg = raw[keep] / size
        centres = reg[:, 0:2] + anchors
        half = reg[:, 2:4] / 2.0
        boxes = np.concatenate([centres - half, centres + half], axis=1)
        keypoints = reg[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :]
        # model input [0, 1] → image pixels (undo the letterbox)
        boxes = (boxes * size - np.array([left, top, left, top], np.float32)) / scale
        keypoints = (keypoints * size - np.array([left, top], np.float32)) / scale
        return weighted_nms(scores, boxes, keypoints, self.spec.nms_iou)


def iou(box: F32, boxes: F32) -> F32:
    """Intersection over union of ``box`` with each of ``boxes`` (x0, y0, x1, y1)."""
    return overlap(box, boxes, over_smaller=False)


def overlap(box: F32, boxes: F32, *, over_smaller: bool) -> F32:
    """Intersection of ``box`` with each of ``boxes``, over their union or over the smaller area."""
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    denominator = np.minimum(area, areas) if over_smaller else area + areas - inter
    return np.asarray(inter / np.maximum(denominator, 1e-9), dtype=np.float32)


def weighted_nms(scores: F32, boxes: F32, keypoints: F32, threshold: float) -> list[Detection]:
    """MediaPipe's weighted NMS: each cluster's boxes and keypoints are averaged by score."""
    order = np.argsort(-scores)
    scores, boxes, keypoints = scores[order], boxes[order], keypoints[order]
    remaining = np.ones(len(scores), bool)
    out: list[Detection] = []
    for i in range(len(scores)):
        if not remaining[i]:
            continue
        overlap = iou(boxes[i], boxes) >= threshold
        members = np.flatnonzero(overlap & remaining)
        remaining[members] = False
        weights = scores[members][:, None]
        total = float(weights.sum())
        box = (boxes[members] * weights).sum(axis=0) / total
        kps = (keypoints[members] * weights[:, :, None]).sum(axis=0) / total
        out.append(
            Detection(float(scores[i]), (float(box[0]), float(box[1]), float(box[2]), float(box[3])), kps)
        )
    return out
