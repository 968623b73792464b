"""denseface: self-hosted, offline dense (888-point) facial landmarks.

>>> import denseface
>>> faces = denseface.analyze("photo.jpg")          # list[Face], largest first
>>> faces[0].regions["LeftEye"].shape                # (64, 2) image pixels
"""

from denseface.api import Analyzer, analyze
from denseface.engine.layout import REGION_COUNTS, REGION_NAMES
from denseface.engine.result import Box, Face, Pose
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
    "Pose",
    "UnsupportedFormatError",
    "__version__",
    "analyze",
]
