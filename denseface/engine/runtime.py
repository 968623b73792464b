"""The one place that knows how to create a LiteRT interpreter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ai_edge_litert.interpreter import Interpreter

from denseface.errors import InferenceError, ModelsMissingError


def load_interpreter(model_path: Path, num_threads: int = 1) -> Any:
    """A ready LiteRT interpreter (XNNPACK CPU delegate) for ``model_path``."""
    try:
        interp = Interpreter(model_path=str(model_path), num_threads=max(1, num_threads))
    except ValueError as exc:
        raise ModelsMissingError(
            f"cannot load {model_path}: {exc}; run `denseface models fetch --force`"
        ) from exc
    interp.allocate_tensors()
    return interp


def invoke(interp: Any, model: str) -> None:
    """Run a LiteRT interpreter; a failure inside the runtime becomes :class:`InferenceError`."""
    try:
        interp.invoke()
    except (RuntimeError, ValueError) as exc:
        raise InferenceError(f"the {model} model failed to run; retry the request") from exc


def interpreter_from_bytes(model: bytes, num_threads: int, shape: tuple[int, int]) -> Any:
    """A ready interpreter for an in-memory model whose image input is resized to ``shape`` (H, W)."""
    try:
        interp = Interpreter(model_content=model, num_threads=max(1, num_threads))
        index = interp.get_input_details()[0]["index"]
        interp.resize_tensor_input(index, [1, shape[0], shape[1], 3])
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelsMissingError(f"cannot prepare a model for {shape[1]}x{shape[0]}: {exc}") from exc
    return interp
