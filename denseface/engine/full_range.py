"""BlazeFace full-range at any input size: one run over the whole photo instead of a grid of tiles.

The pinned ``face_detection_full_range_sparse.tflite`` takes 192×192, but only because three
``RESIZE_BILINEAR`` ops (the feature pyramid's upsampling) read their output sizes from constant
tensors: 12², 24², 48² — the input side over 16, 8 and 4. Everything else is convolutional and its
two ``RESHAPE``s use -1. Rewriting those three constants to (H/16, W/16), (H/8, W/8), (H/4, W/4) and
resizing the input makes the same weights run at H×W (multiples of 32), with one anchor per 4×4
cell, at a cost proportional to the pixels. :func:`resize_model` derives that model from the
pinned file's bytes (found through LiteRT's own flatbuffer schema, exactly 24 bytes change);
:data:`REFERENCE_SHA256` pins the result for one size, checked when a detector is created.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from denseface.engine.detector import Detection, iou, weighted_nms
from denseface.engine.runtime import interpreter_from_bytes, invoke
from denseface.errors import ModelsMissingError

F32 = npt.NDArray[np.float32]

STRIDE = 4  # one anchor per 4×4 input cell
MULTIPLE = 32  # input sides must be multiples of the coarsest feature map's stride
PYRAMID = (16, 8, 4)  # the three upsampling outputs: input side / these
NATIVE = 192
REFERENCE_SIZE = (192, 320)  # H, W
REFERENCE_SHA256 = "9f2f68b3bf42e728cc1fd63b525f8d43c1bdad84b40e2b6386be915937f716a8"
NMS_IOU = 0.3
SESSIONS = 3  # interpreters kept, one per input shape (≈ 15 MB each: XNNPACK's packed weights, buffers)
# The input shapes it runs at (longer side × shorter side, either orientation): a photo's view is
# padded to the smallest that holds it, so a few interpreters serve every photo (≤ 1/3 padding).
LONG_SIDES = (192, 256, 320, 384, 448, 512, 640, 768)
ASPECTS = (1.0, 0.75, 0.5625)  # 1:1, 4:3, 16:9
MAX_SIDE = LONG_SIDES[-1]


def resize_model(model: bytes, height: int, width: int) -> bytes:
    """The full-range model's bytes rewritten for an H×W input (both multiples of 32)."""
    if height <= 0 or width <= 0 or height % MULTIPLE or width % MULTIPLE:
        raise ValueError(f"input sides must be positive multiples of {MULTIPLE}, not {height}x{width}")
    from ai_edge_litert import schema_py_generated as schema

    data = bytearray(model)
    root = schema.Model.GetRootAs(data, 0)
    graph = root.Subgraphs(0)
    resize = schema.BuiltinOperator.RESIZE_BILINEAR
    spots: list[tuple[int, int]] = []  # (byte offset of the int32[2] size, divisor)
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = root.OperatorCodes(op.OpcodeIndex())
        if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) != resize:
            continue
        buffer = root.Buffers(graph.Tensors(op.Inputs(1)).Buffer())
        field = buffer._tab.Offset(4)  # Buffer.data (the flatbuffer vector's offset)
        start = buffer._tab.Vector(field) if field else 0
        values = np.frombuffer(bytes(data[start : start + 8]), np.int32) if field else np.zeros(0)
        if not field or buffer._tab.VectorLen(field) != 8 or values[0] != values[1]:
            raise ModelsMissingError("the full-range detector's upsampling sizes are not constants")
        spots.append((start, NATIVE // int(values[0])))
    if sorted(d for _, d in spots) != sorted(PYRAMID):
        raise ModelsMissingError(f"the full-range detector has upsampling by {spots}, expected {PYRAMID}")
    for start, divisor in spots:
        data[start : start + 8] = np.array([height // divisor, width // divisor], np.int32).tobytes()
    return bytes(data)


def _shapes() -> list[tuple[int, int]]:
    """Every (longer, shorter) input shape, smallest first."""
    out = {
        (long, max(MULTIPLE, math.ceil(long * aspect / MULTIPLE) * MULTIPLE))
        for long in LONG_SIDES
        for aspect in ASPECTS
    }
    return sorted(out, key=lambda ls: (ls[0] * ls[1], ls))


SHAPES = _shapes()


def view_shape(height: int, width: int) -> tuple[int, int]:
    """The input (H, W) for an image of this size: the smallest of :data:`SHAPES` that holds it."""
    longer, shorter = max(height, width), min(height, width)
    if longer > MAX_SIDE:
        raise ValueError(f"the full-range view is at most {MAX_SIDE} px, not {width}x{height}")
    long, short = next(ls for ls in SHAPES if ls[0] >= longer and ls[1] >= shorter)
    return (long, short) if height >= width else (short, long)


@dataclass
class _Session:
    interp: Any
    input_index: int
    regressors_index: int
    scores_index: int
    anchors: F32  # (N, 2) anchor centres in input pixels


class FullRangeDetector:
    """BlazeFace full-range on LiteRT at the image's own size. Not thread-safe."""

    def __init__(self, model_path: Path, *, num_threads: int = 1) -> None:
        self._model = model_path.read_bytes()
        self._threads = num_threads
        reference = hashlib.sha256(resize_model(self._model, *REFERENCE_SIZE)).hexdigest()
        if reference != REFERENCE_SHA256:
            raise ModelsMissingError(
                f"{model_path.name}: the model derived for {REFERENCE_SIZE} has sha256 {reference}, "
                f"expected {REFERENCE_SHA256}; run `denseface models fetch --force`"
            )
        self._sessions: OrderedDict[tuple[int, int], _Session] = OrderedDict()
        self.runs = 0  # model runs made (each one invoke): what a photo costs

    def _session(self, height: int, width: int) -> _Session:
        key = (height, width)
        session = self._sessions.get(key)
        if session is not None:
            self._sessions.move_to_end(key)
            return session
        interp = interpreter_from_bytes(
            resize_model(self._model, height, width), self._threads, (height, width)
        )
        outs = sorted(interp.get_output_details(), key=lambda d: int(d["shape"][-1]), reverse=True)
        ys, xs = np.mgrid[0 : height // STRIDE, 0 : width // STRIDE]
        anchors = np.stack([(xs + 0.5) * STRIDE, (ys + 0.5) * STRIDE], axis=-1).reshape(-1, 2)
        if tuple(outs[0]["shape"]) != (1, len(anchors), 16):
            raise ModelsMissingError(f"full-range detector at {width}x{height}: outputs {outs[0]['shape']}")
        session = _Session(
            interp,
            interp.get_input_details()[0]["index"],
            outs[0]["index"],
            outs[1]["index"],
            anchors.astype(np.float32),
        )
        self._sessions[key] = session
        if len(self._sessions) > SESSIONS:
            self._sessions.popitem(last=False)
        return session

    def detect(self, rgb: npt.NDArray[np.uint8], *, score_threshold: float = 0.5) -> list[Detection]:
        """Faces in an RGB image at its own scale (padded to multiples of 32), in its pixels."""
        return self.detect_with_weak(rgb, score_threshold=score_threshold)[0]

    def detect_with_weak(
        self, rgb: npt.NDArray[np.uint8], *, score_threshold: float = 0.5, weak_threshold: float | None = None
    ) -> tuple[list[Detection], list[Detection]]:
        """:meth:`detect`'s faces, and from the same run the weak ones: scores in ``[weak_threshold,
        score_threshold)``, merged among themselves only (the faces are exactly :meth:`detect`'s), and
        none overlapping a face (empty when ``weak_threshold`` is None)."""
        for threshold in (score_threshold, weak_threshold):
            if threshold is not None and not 0.0 < threshold < 1.0:
                raise ValueError(f"score thresholds must be in (0, 1), not {threshold}")
        height, width = rgb.shape[:2]
        in_h, in_w = view_shape(height, width)
        session = self._session(in_h, in_w)
        tensor = np.zeros((1, in_h, in_w, 3), np.float32)
        tensor[0, :height, :width] = rgb.astype(np.float32) * (2.0 / 255.0) - 1.0
        session.interp.set_tensor(session.input_index, tensor)
        invoke(session.interp, "full-range face detector")
        self.runs += 1
        raw = session.interp.get_tensor(session.regressors_index)[0]
        logits = session.interp.get_tensor(session.scores_index)[0, :, 0]
        strong = logits >= _logit(score_threshold)
        faces = _decode(session, raw, logits, np.flatnonzero(strong))
        if weak_threshold is None or weak_threshold >= score_threshold:
            return faces, []
        weak = _decode(session, raw, logits, np.flatnonzero(~strong & (logits >= _logit(weak_threshold))))
        if faces and weak:
            boxes = np.array([f.box for f in faces], np.float32)
            weak = [w for w in weak if float(iou(np.array(w.box, np.float32), boxes).max()) < NMS_IOU]
        return faces, weak


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))  # sigmoid(x) >= p  ⇔  x >= logit(p)


def _decode(session: _Session, raw: F32, logits: F32, keep: npt.NDArray[np.intp]) -> list[Detection]:
    """The anchors ``keep`` decoded to boxes and keypoints (input pixels), then weighted NMS."""
    if keep.size == 0:
        return []
    scores = (1.0 / (1.0 + np.exp(-np.clip(logits[keep], -80.0, 80.0)))).astype(np.float32)
    anchors, reg = session.anchors[keep], raw[keep]
    centres = reg[:, 0:2] + anchors
    half = reg[:, 2:4] / 2.0
    boxes = np.concatenate([centres - half, centres + half], axis=1)
    keypoints = reg[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :]
    return weighted_nms(scores, boxes, keypoints, NMS_IOU)


def resize_view(rgb: npt.NDArray[np.uint8], scale: float) -> npt.NDArray[np.uint8]:
    """The image scaled by ``scale`` (≤ 1) with area averaging; the image itself at 1."""
    if scale >= 1.0:
        return rgb
    height, width = rgb.shape[:2]
    dims = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(cv2.resize(rgb, dims, interpolation=cv2.INTER_AREA), dtype=np.uint8)
