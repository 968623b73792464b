"""Decoding a request's fields once it is authenticated (or, for v1, to find its key): the query string
or form body, the JSON body, the action/version/region target and the language. Raises
:class:`~denseface.rpc.envelope.ApiError`; used by :mod:`denseface.rpc.protocol`."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

from denseface.rpc.catalog import IMPLEMENTED_ACTIONS, REGION_REQUIRED_VERSIONS, VERSIONS, is_iai_action
from denseface.rpc.envelope import DEFAULT_LANGUAGE, ApiError, normalize_language

ACTIONS = frozenset(IMPLEMENTED_ACTIONS)
MAX_FIELDS = 256
JSON_TYPE = "application/json"
_INTEGER = re.compile(r"[0-9]{1,19}")


def integer(value: str, name: str) -> int:
    if not _INTEGER.fullmatch(value):
        raise ApiError("InvalidParameter", detail=name)
    return int(value)


def decode_pairs(data: str | bytes) -> dict[str, str]:
    """Decode a query string or form body into a dict; repeated names and bad encodings are errors."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError("InvalidParameter", detail="query string or form body") from exc
    result: dict[str, str] = {}
    for name, value in pairs:
        if name in result:
            raise ApiError("InvalidParameter", detail=name)
        result[name] = value
    return result


def check_target(action: str | None, version: str | None, region: str | None, prefix: str) -> None:
    if not action:
        raise ApiError("MissingParameter", detail=prefix + "Action")
    if action not in ACTIONS and not is_iai_action(action):
        raise ApiError("InvalidAction", detail=action)
    if not version:
        raise ApiError("MissingParameter", detail=prefix + "Version")
    if version not in VERSIONS:
        raise ApiError("NoSuchVersion", detail=version)
    if action not in ACTIONS:
        if not is_iai_action(action, version):
            raise ApiError("InvalidAction", detail=action)
        raise ApiError("UnsupportedOperation.UnknowMethod", detail=action)
    if version in REGION_REQUIRED_VERSIONS and not (region and region.strip()):
        raise ApiError("MissingParameter", detail=prefix + "Region")


def check_language(value: str | None, name: str) -> str:
    if value is None or not value.strip():
        return DEFAULT_LANGUAGE
    language = normalize_language(value)
    if language is None:
        raise ApiError("InvalidParameterValue", detail=name)
    return language


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_object(body: bytes, content_type: str) -> dict[str, Any]:
    """The body as a JSON object (empty body = ``{}``); ``InvalidParameter`` otherwise."""
    if content_type != JSON_TYPE:
        raise ApiError("InvalidParameter", detail="Content-Type")
    if not body.strip():
        return {}
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ApiError("InvalidParameter", detail="request body") from exc
    if not isinstance(value, dict):
        raise ApiError("InvalidParameter", detail="request body")
    return value
