"""Parameter validation for the ``AnalyzeDenseLandmarks`` action (both API versions share the schema).

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
FaceModelVersion not "3.0"                         InvalidParameterValue.FaceModelVersionIllegal
neither a non-blank Url nor a non-empty Image      InvalidParameterValue.ImageEmpty
=================================================  =============================================

The split between the two type codes: ``InvalidParameter.InvalidParameter`` (iai's code) is about one
*action parameter* of the wrong type or shape, as above; plain ``InvalidParameter`` is about the
*request's own format*, checked earlier by :mod:`denseface.rpc.protocol` (body not a JSON object, wrong
Content-Type, an undecodable query or form, a repeated name, a non-integer timestamp).

JSON ``null`` is treated as absent, and so is an empty FaceModelVersion. Mode and NeedRotateDetection
default to 0, FaceModelVersion to "3.0". When both Url and Image are given, Url wins and ``image_b64``
is ``None``. Image size, base64 validity and URL safety are checked later, where the image is decoded or
fetched.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from denseface.rpc.envelope import ApiError

#: an action parameter of the wrong type or shape (see the module docstring for the split)
WRONG_TYPE = "InvalidParameter.InvalidParameter"
ANALYZE_PARAMS = frozenset({"Mode", "Image", "Url", "FaceModelVersion", "NeedRotateDetection"})
FACE_MODEL_VERSIONS = ("3.0",)
DEFAULT_FACE_MODEL_VERSION = "3.0"
_QUERY_INTEGER = re.compile(r"-?[0-9]{1,18}")


@dataclass(frozen=True)
class AnalyzeParams:
    """Validated ``AnalyzeDenseLandmarks`` input. Exactly one of ``image_b64`` and ``url`` is set."""

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


def parse_analyze_params(params: Mapping[str, Any], *, from_query: bool) -> AnalyzeParams:
    """Validate the API parameters of one ``AnalyzeDenseLandmarks`` call; raise :class:`ApiError`."""
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
        version = DEFAULT_FACE_MODEL_VERSION
    elif version not in FACE_MODEL_VERSIONS:
        raise ApiError("InvalidParameterValue.FaceModelVersionIllegal", detail=version)

    if url is not None and url.strip():
        return AnalyzeParams(mode, None, url.strip(), bool(rotate), version)
    if image:
        return AnalyzeParams(mode, image, None, bool(rotate), version)
    raise ApiError("InvalidParameterValue.ImageEmpty")


__all__ = ["ANALYZE_PARAMS", "WRONG_TYPE", "AnalyzeParams", "parse_analyze_params"]
