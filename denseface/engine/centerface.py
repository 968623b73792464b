"""CenterFace (an anchor-free face detector trained on WIDER FACE) on ONNX Runtime.

A second, independent family beside BlazeFace: a different architecture, different training data,
so the two rarely fire on the same non-face. The ONNX graph takes RGB in 0..255 (NCHW, any size
that is a multiple of 32) and returns, at stride 4, a face-centre heatmap, box scales, centre
offsets and five landmarks. Here it answers two questions: where are the faces in a photo
(:meth:`CenterFace.detect`), and how strongly does it see a face at a point of an aligned crop
(:func:`centre_peak` of :meth:`CenterFace.run`'s heatmap).

The pinned file declares a fixed 10×3×32×32 input (the network itself is fully convolutional) and
lists its weights among the graph's inputs (an old exporter's habit). :func:`any_size_model` derives
the graph ONNX Runtime runs at any size, once, when ``denseface models fetch`` caches it (its sha256
pinned in :mod:`denseface.engine.models`; so the onnx package is not imported at run time). ONNX Runtime
runs it about twice as fast as OpenCV's DNN module (1.5 against 3.3 ms at 96², one thread) with
the same outputs to 1e-5.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from denseface.engine.detector import Detection, weighted_nms
from denseface.errors import InferenceError, ModelsMissingError

OUTPUTS = ("537", "538", "539", "540")  # heatmap, scale, offset, landmarks
STRIDE = 4
CENTRE = 0.2  # the centre window: ± this fraction of the side around the middle
INPUT = "input.1"


def any_size_model(model: bytes) -> bytes:
    """The pinned CenterFace graph with its image input's and outputs' N, H, W made free, its weights
    no longer listed as graph inputs and its unused batch-norm counters dropped (the same nodes and
    weights). Run by ``denseface models fetch`` (which pins the result's sha256), not at load time."""
    try:
        import onnx
    except ImportError as exc:  # the models extra: only this step needs it, not serving
        raise ModelsMissingError(
            "deriving CenterFace's any-size graph needs the onnx package: pip install 'denseface[models]'"
        ) from exc

    try:
        proto = onnx.load_from_string(model)
    except Exception as exc:  # onnx raises protobuf's DecodeError and others for a corrupt file
        raise ModelsMissingError(f"the CenterFace file is not an ONNX model: {exc}") from exc
    graph = proto.graph
    used = {name for node in graph.node for name in node.input}
    weights = [t for t in graph.initializer if t.name in used]
    inputs = [i for i in graph.input if i.name not in {t.name for t in graph.initializer}]
    if [i.name for i in inputs] != [INPUT] or sorted(o.name for o in graph.output) != sorted(OUTPUTS):
        raise ModelsMissingError("the CenterFace file does not have CenterFace's input and outputs")
    del graph.initializer[:]
    graph.initializer.extend(weights)
    del graph.input[:]
    graph.input.extend(inputs)
    del graph.value_info[:]  # intermediate shapes inferred for 32×32; ONNX Runtime infers its own
    for value in (*graph.input, *graph.output):
        dims = value.type.tensor_type.shape.dim
        for axis, name in ((0, "batch"), (2, "height"), (3, "width")):
            dims[axis].dim_param = name  # replaces the fixed dim_value (a protobuf oneof)
    return bytes(proto.SerializeToString())


class CenterFace:
    """CenterFace on ONNX Runtime (CPU), from the graph :func:`any_size_model` made. Not thread-safe:
    use one instance per thread."""

    def __init__(self, model_path: Path, *, num_threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, num_threads)
        options.inter_op_num_threads = 1
        # ONNX Runtime's arena on (its buffers reused), its per-shape memory patterns off: views come in
        # many shapes, and caching a pattern for each (or freeing big buffers to malloc) made a process
        # grow by ≈ 70 MB over repeated photos; this way its RSS stays flat, as with OpenCV's DNN
        options.enable_mem_pattern = False
        options.log_severity_level = 3  # errors only
        try:
            self._session: Any = ort.InferenceSession(
                str(model_path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ONNX Runtime's own exception types are not exported stably
            raise ModelsMissingError(
                f"cannot load {model_path}: {exc}; run `denseface models fetch --force`"
            ) from exc
        self.runs = 0  # model runs made: what a photo costs
        shape = self._session.get_inputs()[0].shape
        if [i.name for i in self._session.get_inputs()] != [INPUT] or any(
            isinstance(shape[axis], int) for axis in (0, 2, 3)
        ):
            raise ModelsMissingError(
                f"{model_path} is not CenterFace made any size (input {shape}); "
                "run `denseface models fetch --force`"
            )

    def run(self, rgb: npt.NDArray[np.uint8]) -> list[npt.NDArray[np.float32]]:
        """The four output maps for an RGB image whose sides are multiples of 32."""
        height, width = rgb.shape[:2]
        if height % 32 or width % 32:
            raise ValueError(f"CenterFace input sides must be multiples of 32, not {width}x{height}")
        blob = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32)
        try:
            outputs = self._session.run(list(OUTPUTS), {INPUT: blob})
            self.runs += 1
        except Exception as exc:  # a failure inside the runtime (e.g. out of memory)
            raise InferenceError("the CenterFace model failed to run; retry the request") from exc
        return [np.asarray(o, dtype=np.float32) for o in outputs]

    def detect(self, rgb: npt.NDArray[np.uint8], *, score_threshold: float = 0.5) -> list[Detection]:
        """Faces in an RGB image at its own scale (padded to multiples of 32), in its pixels."""
        height, width = rgb.shape[:2]
        padded = np.zeros((-(-height // 32) * 32, -(-width // 32) * 32, 3), np.uint8)
        padded[:height, :width] = rgb
        return decode(self.run(padded), score_threshold)


def centre_peak(heat: npt.NDArray[np.float32], side: int) -> float:
    """The heatmap's peak in the central window (± :data:`CENTRE` of the side) of a square input of
    ``side`` pixels."""
    cells = side // STRIDE
    grid = np.asarray(heat, dtype=np.float32).reshape(cells, cells)
    lo, hi = round(cells * (0.5 - CENTRE)), round(cells * (0.5 + CENTRE)) + 1
    return float(grid[lo:hi, lo:hi].max())


def decode(outputs: list[npt.NDArray[np.float32]], threshold: float, nms_iou: float = 0.3) -> list[Detection]:
    """Detections from CenterFace's four stride-4 maps (input pixels): every heatmap cell at or above
    ``threshold`` gives a box (exp of its scales × 4, centred on the cell plus its offset) and five
    landmarks (relative to the box), then weighted non-maximum suppression."""
    heat, scale, offset, marks = (np.asarray(o, dtype=np.float32)[0] for o in outputs)
    ys, xs = np.nonzero(heat[0] >= threshold)
    if ys.size == 0:
        return []
    scores = heat[0, ys, xs]
    box_h = np.exp(scale[0, ys, xs]) * STRIDE
    box_w = np.exp(scale[1, ys, xs]) * STRIDE
    cy = (ys + offset[0, ys, xs] + 0.5) * STRIDE
    cx = (xs + offset[1, ys, xs] + 0.5) * STRIDE
    x0, y0 = cx - box_w / 2.0, cy - box_h / 2.0
    boxes = np.stack([x0, y0, x0 + box_w, y0 + box_h], axis=1)
    # landmarks: channel 2j is y, 2j+1 is x, as fractions of the box from its top-left corner
    lm_y = marks[0::2, ys, xs].T * box_h[:, None] + y0[:, None]
    lm_x = marks[1::2, ys, xs].T * box_w[:, None] + x0[:, None]
    five = np.stack([lm_x, lm_y], axis=-1)  # (n, 5, 2): eyes, nose tip, mouth corners
    mouth = (five[:, 3] + five[:, 4]) / 2.0
    # BlazeFace's six keypoints (eyes, nose, mouth centre, ears): the ears are not modelled, the eyes
    # stand in for them
    keypoints = np.stack([five[:, 0], five[:, 1], five[:, 2], mouth, five[:, 0], five[:, 1]], axis=1)
    return weighted_nms(scores, boxes.astype(np.float32), keypoints.astype(np.float32), nms_iou)
