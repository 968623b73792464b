"""denseface: self-hosted, offline dense (888-point) facial landmarks.

>>> import denseface
>>> faces = denseface.analyze("photo.jpg")          # list[Face], largest first
>>> faces[0].regions["LeftEye"].shape                # (64, 2) image pixels
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from denseface.errors import (
    DensefaceError,
    FaceTooSmallError,
    ImageDecodeError,
    ImageError,
    InferenceError,
    ModelsMissingError,
    NoFaceError,
    UnsupportedFormatError,
)

__version__ = "0.1.0"

if TYPE_CHECKING:
    from denseface.api import Analyzer, Tracker, analyze
    from denseface.engine.layout import REGION_COUNTS, REGION_NAMES
    from denseface.engine.result import Box, Face, Pose, TrackedFace, VideoFrame
    from denseface.engine.smoothing import OneEuro
    from denseface.rpc.stream import stream_url

# Imported on first use, so that `import denseface.<module>` does not load the engine's libraries
# (LiteRT, OpenCV, NumPy) into processes that never run a model, such as the server's main process.
_LAZY = {
    "Analyzer": "denseface.api",
    "analyze": "denseface.api",
    "Tracker": "denseface.api",
    "TrackedFace": "denseface.engine.result",
    "VideoFrame": "denseface.engine.result",
    "OneEuro": "denseface.engine.smoothing",
    "stream_url": "denseface.rpc.stream",
    "REGION_COUNTS": "denseface.engine.layout",
    "REGION_NAMES": "denseface.engine.layout",
    "Box": "denseface.engine.result",
    "Face": "denseface.engine.result",
    "Pose": "denseface.engine.result",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'denseface' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "REGION_COUNTS",
    "REGION_NAMES",
    "Analyzer",
    "Box",
    "DensefaceError",
    "Face",
    "FaceTooSmallError",
    "ImageDecodeError",
    "ImageError",
    "InferenceError",
    "ModelsMissingError",
    "NoFaceError",
    "OneEuro",
    "Pose",
    "TrackedFace",
    "Tracker",
    "UnsupportedFormatError",
    "VideoFrame",
    "__version__",
    "analyze",
    "stream_url",
]
