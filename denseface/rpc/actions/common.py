"""What the image actions share: their parameters' rules, :class:`Action`, and integer pixel points.

``AnalyzeDenseLandmarks`` and ``AnalyzeFace`` take the same parameters in both API versions (``Mode``,
``Image``, ``Url``, ``FaceModelVersion``, ``NeedRotateDetection``) under the same rules; they differ only
in the FaceModelVersions they accept, Mode 0's face limit and the response fields.

``params`` is :attr:`denseface.rpc.protocol.ApiCall.params`: a JSON object for TC3 POST
(``from_query=False``) or decoded strings for GET and v1 (``from_query=True``), common parameters
already removed. Checks, first failure wins:

=================================================  =============================================
check                                              code
=================================================  =============================================
a name other than Mode, Image, Url,                UnknownParameter (names the first, sorted)
FaceModelVersion, NeedRotateDetection
wrong type: JSON Mode/NeedRotateDetection not an   InvalidParameter.InvalidParameter
integer (bools, floats and strings rejected, as
the SDK always sends integers); query/form value
not a decimal integer; JSON Image/Url/
FaceModelVersion not a string
Mode not 0/1, NeedRotateDetection not 0/1          InvalidParameterValue
FaceModelVersion not one the action accepts         InvalidParameterValue.FaceModelVersionIllegal
neither a non-blank Url nor a non-empty Image      InvalidParameterValue.ImageEmpty
=================================================  =============================================

The split between the two type codes: ``InvalidParameter.InvalidParameter`` (iai's code) is about one
*action parameter* of the wrong type or shape, as above; plain ``InvalidParameter`` is about the
*request's own format*, checked earlier by :mod:`denseface.rpc.protocol` (body not a JSON object, wrong
Content-Type, an undecodable query or form, a repeated name, a non-integer timestamp).

JSON ``null`` is treated as absent, and so is an empty FaceModelVersion. Mode and NeedRotateDetection
default to 0, FaceModelVersion to "3.0" (the first the action accepts). When both Url and Image are
given, Url wins and ``image_b64`` is ``None``. Image size, base64 validity and URL safety are checked
later, where the image is decoded or fetched.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from denseface.rpc.envelope import ApiError

if TYPE_CHECKING:  # the server process imports this module, and never numpy or the engine
    from denseface.engine.result import Face, FloatArray

#: an action parameter of the wrong type or shape (see the module docstring for the split)
WRONG_TYPE = "InvalidParameter.InvalidParameter"
ANALYZE_PARAMS = frozenset({"Mode", "Image", "Url", "FaceModelVersion", "NeedRotateDetection"})
_QUERY_INTEGER = re.compile(r"-?[0-9]{1,18}")


@dataclass(frozen=True)
class AnalyzeParams:
    """Validated input of an image action. Exactly one of ``image_b64`` and ``url`` is set."""

    mode: int
    image_b64: str | None
    url: str | None
    need_rotate: bool
    face_model_version: str


def _integer(params: Mapping[str, Any], name: str, *, from_query: bool) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if from_query:
        if not isinstance(value, str) or not _QUERY_INTEGER.fullmatch(value):
            raise ApiError(WRONG_TYPE, detail=name)
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(WRONG_TYPE, detail=name)
    return value


def _string(params: Mapping[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(WRONG_TYPE, detail=name)
    return value


def _flag(value: int | None, name: str) -> int:
    if value is None:
        return 0
    if value not in (0, 1):
        raise ApiError("InvalidParameterValue", detail=name)
    return value


def parse_analyze_params(
    params: Mapping[str, Any], *, from_query: bool, face_model_versions: Sequence[str] = ("3.0",)
) -> AnalyzeParams:
    """Validate the API parameters of one call; raise :class:`ApiError`. ``face_model_versions``: the
    ones the action accepts, the first being the default."""
    unknown = sorted(str(name) for name in params if name not in ANALYZE_PARAMS)
    if unknown:
        raise ApiError("UnknownParameter", detail=unknown[0])

    mode = _integer(params, "Mode", from_query=from_query)
    rotate = _integer(params, "NeedRotateDetection", from_query=from_query)
    image = _string(params, "Image")
    url = _string(params, "Url")
    version = _string(params, "FaceModelVersion")

    mode = _flag(mode, "Mode")
    rotate = _flag(rotate, "NeedRotateDetection")
    if version is None or version == "":
        version = face_model_versions[0]
    elif version not in face_model_versions:
        raise ApiError("InvalidParameterValue.FaceModelVersionIllegal", detail=version)

    if url is not None and url.strip():
        return AnalyzeParams(mode, None, url.strip(), bool(rotate), version)
    if image:
        return AnalyzeParams(mode, image, None, bool(rotate), version)
    raise ApiError("InvalidParameterValue.ImageEmpty")


#: the response fields (without ``RequestId``) as compact JSON: image width, height, the faces (largest
#: first) and the FaceModelVersion to report
ResponseJson = Callable[[int, int, "Sequence[Face]", str], bytes]


@dataclass(frozen=True)
class Action:
    """One image action: its name, its rules and its response."""

    name: str
    #: faces Mode 0 returns at most (Tencent's documented limit for the action)
    max_faces: int
    #: FaceModelVersion values accepted; the first is the default
    face_model_versions: tuple[str, ...]
    response_json: ResponseJson

    def parse(self, params: Mapping[str, Any], *, from_query: bool) -> AnalyzeParams:
        return parse_analyze_params(
            params, from_query=from_query, face_model_versions=self.face_model_versions
        )


def face_box(face: Face, width: int, height: int) -> tuple[int, int, int, int]:
    """The face box as integer ``X, Y, Width, Height`` inside the image (at least 1 px)."""
    x0 = min(max(math.floor(face.box.x), 0), width - 1)
    y0 = min(max(math.floor(face.box.y), 0), height - 1)
    x1 = min(max(math.ceil(face.box.x + face.box.width), x0 + 1), width)
    y1 = min(max(math.ceil(face.box.y + face.box.height), y0 + 1), height)
    return x0, y0, x1 - x0, y1 - y0


def pixel_points(points: FloatArray, width: int, height: int) -> list[list[int]]:
    """(n, 2) points rounded to integer pixels and clipped to the image (a face cut by the frame keeps
    its points on the border, as a drawn overlay would)."""
    import numpy as np  # here, not at the top: the server process imports this module, never numpy

    out: list[list[int]] = np.clip(np.rint(points), 0, [width - 1, height - 1]).astype(np.int64).tolist()
    return out


def points_json(points: FloatArray, width: int, height: int) -> str:
    """``[{"X":…,"Y":…},…]`` of :func:`pixel_points`, written directly (integers only)."""
    return "[" + ",".join([f'{{"X":{x},"Y":{y}}}' for x, y in pixel_points(points, width, height)]) + "]"


__all__ = [
    "ANALYZE_PARAMS",
    "WRONG_TYPE",
    "Action",
    "AnalyzeParams",
    "face_box",
    "parse_analyze_params",
    "pixel_points",
    "points_json",
]
