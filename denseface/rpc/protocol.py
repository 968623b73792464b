"""The Tencent Cloud API 3.0 request protocol, transport-neutral: raw request in, :class:`ApiCall` or
:class:`ApiError` out. No HTTP framework and no model code here.

Request forms (Tencent Cloud API 3.0): TC3-HMAC-SHA256 over POST JSON or GET query, and v1
(HmacSHA1/HmacSHA256 with a ``Signature`` parameter) over GET query or POST form. A request with an
``Authorization`` header is TC3; without one, a GET or a form POST is v1 and anything else is TC3 with a
missing header (``AuthFailure.InvalidAuthorization``).

Checks run in this order, first failure wins. Authentication comes before action/version/parameter
checks, so an unauthenticated caller learns nothing about what the server supports:

=====  ===========================================================  =================================
 step  check                                                        code
=====  ===========================================================  =================================
 1     method is GET or POST                                        UnsupportedProtocol
 2     query ≤ 32 KB; body ≤ 10 MB (TC3) or 1 MB (v1 POST)           RequestSizeLimitExceeded
 3     TC3: Authorization present and well-formed, signed           AuthFailure.InvalidAuthorization
       headers present
       v1: form/query decodes (UTF-8, no repeated names)            InvalidParameter
       v1: Action, Timestamp, Nonce, SecretId, Signature, Version   MissingParameter (names the first)
 4     timestamp present / an integer (TC3: X-TC-Timestamp;         MissingParameter / InvalidParameter
       v1: Timestamp and Nonce integers)
 5     |now − timestamp| ≤ 300 s                                    AuthFailure.SignatureExpire
 6     TC3: credential date = UTC date of timestamp, and service    AuthFailure.SignatureFailure
       is ``iai`` or the Host's text before its first "." (what
       the Node.js/Java SDKs sign with: ``127`` at 127.0.0.1:8000)
       v1: SignatureMethod HmacSHA1/HmacSHA256                      InvalidParameterValue
 7     SecretId known and enabled                                   AuthFailure.SecretIdNotFound
 8     signature matches (constant-time)                            AuthFailure.SignatureFailure
 9     (not here: per-key rate, quota and state, checked by the     RequestLimitExceeded /
       server after step 14, :mod:`denseface.rpc.accounts.gate`)   ResourceUnavailable.*
 10    action present and an iai action                             MissingParameter / InvalidAction
 11    version present and 2018-03-01 or 2020-03-03; the action     MissingParameter / NoSuchVersion /
       exists in that version; denseface implements it              InvalidAction /
       (:mod:`denseface.rpc.catalog`)                               UnsupportedOperation.UnknowMethod
 12    2020-03-03 has a region                                      MissingParameter
 13    language empty, zh-CN or en-US (case-insensitive)            InvalidParameterValue
 14    TC3 POST: Content-Type application/json; body UTF-8 JSON     InvalidParameter
       object (empty body = ``{}``); GET query decodes
=====  ===========================================================  =================================

TC3 canonical headers: the signature v3 document lowercases header values, the official Python SDK does
not, and the Node.js SDK signs ``host`` without its port; a signature matching any of these is accepted
(:func:`denseface.rpc.signing.tc3_canonical_variants`). ``X-TC-Token`` is accepted and passed through
unchecked (there are no temporary credentials here). Region is not validated beyond being present for
2020-03-03; for 2018-03-01 it is ignored (but reported). Errors and envelopes are in
:mod:`denseface.rpc.envelope` (messages localized from ``denseface/data/messages.json``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl

from denseface.rpc import signing
from denseface.rpc.catalog import IMPLEMENTED_ACTIONS, REGION_REQUIRED_VERSIONS, VERSIONS, is_iai_action
from denseface.rpc.envelope import (
    DEFAULT_LANGUAGE,
    LANGUAGES,
    ApiError,
    envelope_for_error,
    error_envelope,
    message_for,
    new_request_id,
    normalize_language,
    success_envelope,
)

if TYPE_CHECKING:
    from denseface.rpc.credentials import Credential

ACTIONS = frozenset(IMPLEMENTED_ACTIONS)
MAX_CLOCK_SKEW = 300
MAX_QUERY_BYTES = 32 * 1024
MAX_V1_BODY_BYTES = 1024 * 1024
MAX_TC3_BODY_BYTES = 10 * 1024 * 1024
MAX_FIELDS = 256
V1_REQUIRED = ("Action", "Timestamp", "Nonce", "SecretId", "Signature", "Version")
#: v1 common parameters (documented ones plus the SDK's RequestClient and Language); never API params.
COMMON_PARAMS = frozenset({*V1_REQUIRED, "Region", "SignatureMethod", "Token", "Language", "RequestClient"})
#: Every code :func:`parse_request` can raise.
PROTOCOL_ERROR_CODES = frozenset(
    {
        "UnsupportedProtocol",
        "RequestSizeLimitExceeded",
        "AuthFailure.InvalidAuthorization",
        "AuthFailure.SignatureExpire",
        "AuthFailure.SignatureFailure",
        "AuthFailure.SecretIdNotFound",
        "MissingParameter",
        "InvalidParameter",
        "InvalidParameterValue",
        "RequestLimitExceeded",
        "InvalidAction",
        "NoSuchVersion",
        "UnsupportedOperation.UnknowMethod",
    }
)
_INTEGER = re.compile(r"[0-9]{1,19}")
_FORM = "application/x-www-form-urlencoded"
_JSON = "application/json"


class CredentialLookup(Protocol):
    """Anything that maps a SecretId to a key (:class:`~denseface.rpc.credentials.CredentialStore`)."""

    def get(self, secret_id: str) -> Credential | None: ...


@dataclass(frozen=True)
class ApiCall:
    """An authenticated call. ``params`` holds the API parameters only: the JSON object for TC3 POST,
    or decoded strings (common parameters removed) for GET and v1."""

    action: str
    version: str
    region: str | None
    language: str
    token: str | None
    secret_id: str
    sign_method: str
    params: dict[str, Any]
    timestamp: int
    request_client: str | None = None
    #: True when ``params`` are decoded strings (GET or v1): pass it to ``parse_analyze_params``.
    from_query: bool = False


# ------------------------------------------------------------------------------------------------ parser
@dataclass
class _State:
    language: str = DEFAULT_LANGUAGE


def parse_request(
    method: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    credentials: CredentialLookup,
) -> ApiCall:
    """Authenticate and decode one request; raise :class:`ApiError` (codes in ``PROTOCOL_ERROR_CODES``).

    ``query`` is the raw query string without ``?``, exactly as received (ASGI:
    ``scope["query_string"].decode("latin-1")``; it is the TC3 canonical query string). ``headers`` is any
    mapping, names matched case-insensitively; ``Host`` is used verbatim. ``now`` is the Unix time.
    """
    state = _State()
    try:
        lowered = {name.lower(): value for name, value in headers.items()}
        if method not in ("GET", "POST"):
            raise ApiError("UnsupportedProtocol", detail=method)
        content_type = lowered.get("content-type", "").split(";", 1)[0].strip().lower()
        if "authorization" in lowered or not (method == "GET" or content_type == _FORM):
            return _parse_tc3(method, query, lowered, body, content_type, now, credentials, state)
        return _parse_v1(method, query, lowered, body, now, credentials, state)
    except ApiError as error:
        if error.language is None:
            error.language = state.language
        raise


def _check_sizes(method: str, query: str, body: bytes, body_limit: int) -> None:
    if len(query) > MAX_QUERY_BYTES or (method == "POST" and len(body) > body_limit):
        raise ApiError("RequestSizeLimitExceeded")


def _integer(value: str, name: str) -> int:
    if not _INTEGER.fullmatch(value):
        raise ApiError("InvalidParameter", detail=name)
    return int(value)


def _check_skew(timestamp: int, now: float) -> None:
    if abs(now - timestamp) > MAX_CLOCK_SKEW:
        raise ApiError("AuthFailure.SignatureExpire")


def _decode_pairs(data: str | bytes) -> dict[str, str]:
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


def _lookup(credentials: CredentialLookup, secret_id: str) -> Credential:
    credential = credentials.get(secret_id)
    if credential is None or not credential.enabled:
        raise ApiError("AuthFailure.SecretIdNotFound")
    return credential


def _parse_tc3(
    method: str,
    query: str,
    headers: dict[str, str],
    body: bytes,
    content_type: str,
    now: float,
    credentials: CredentialLookup,
    state: _State,
) -> ApiCall:
    state.language = normalize_language(headers.get("x-tc-language")) or DEFAULT_LANGUAGE
    _check_sizes(method, query, body, MAX_TC3_BODY_BYTES)
    raw_auth = headers.get("authorization")
    if raw_auth is None:
        raise ApiError("AuthFailure.InvalidAuthorization", detail="Authorization")
    try:
        auth = signing.parse_tc3_authorization(raw_auth)
    except signing.AuthorizationFormatError as exc:
        raise ApiError("AuthFailure.InvalidAuthorization", detail=str(exc)) from exc
    missing = [name for name in auth.signed_headers if name not in headers]
    if missing:
        raise ApiError("AuthFailure.InvalidAuthorization", detail=f"signed header {missing[0]} is absent")
    raw_timestamp = headers.get("x-tc-timestamp", "").strip()
    if not raw_timestamp:
        raise ApiError("MissingParameter", detail="X-TC-Timestamp")
    timestamp = _integer(raw_timestamp, "X-TC-Timestamp")
    _check_skew(timestamp, now)
    if auth.date != signing.utc_date(timestamp) or not signing.service_accepted(
        auth.service, headers.get("host", "")
    ):
        raise ApiError("AuthFailure.SignatureFailure")
    credential = _lookup(credentials, auth.secret_id)

    unsigned = headers.get("x-tc-content-sha256", "").strip().upper() == signing.UNSIGNED_PAYLOAD
    payload = None if unsigned else (b"" if method == "GET" else body)
    canonical_query = query if method == "GET" else ""
    key = signing.tc3_signing_key(credential.secret_key, auth.date, auth.service)
    scope = signing.credential_scope(auth.date, auth.service)
    matched = False
    for canonical in signing.tc3_canonical_variants(
        method, canonical_query, headers, auth.signed_headers, payload
    ):
        expected = signing.tc3_signature(key, signing.tc3_string_to_sign(raw_timestamp, scope, canonical))
        matched |= signing.signatures_equal(expected, auth.signature)
    if not matched:
        raise ApiError("AuthFailure.SignatureFailure")

    action, version, region = (headers.get(f"x-tc-{name}") for name in ("action", "version", "region"))
    _check_target(action, version, region, "X-TC-")
    state.language = _check_language(headers.get("x-tc-language"), "X-TC-Language")
    if method == "GET":
        params: dict[str, Any] = {
            name: value for name, value in _decode_pairs(query).items() if name not in COMMON_PARAMS
        }
    else:
        params = _json_object(body, content_type)
    return ApiCall(
        action=str(action),
        version=str(version),
        region=region or None,
        language=state.language,
        token=headers.get("x-tc-token") or None,
        secret_id=credential.secret_id,
        sign_method=signing.TC3_ALGORITHM,
        params=params,
        timestamp=timestamp,
        request_client=headers.get("x-tc-requestclient"),
        from_query=method == "GET",
    )


def _parse_v1(
    method: str,
    query: str,
    headers: dict[str, str],
    body: bytes,
    now: float,
    credentials: CredentialLookup,
    state: _State,
    path: str = "/",
) -> ApiCall:
    _check_sizes(method, query, body, MAX_V1_BODY_BYTES)
    fields = _decode_pairs(query if method == "GET" else body)
    state.language = normalize_language(fields.get("Language")) or DEFAULT_LANGUAGE
    for name in V1_REQUIRED:
        if not fields.get(name):
            raise ApiError("MissingParameter", detail=name)
    timestamp = _integer(fields["Timestamp"], "Timestamp")
    _integer(fields["Nonce"], "Nonce")
    _check_skew(timestamp, now)
    sign_method = fields.get("SignatureMethod") or "HmacSHA1"
    if sign_method not in signing.V1_METHODS:
        raise ApiError("InvalidParameterValue", detail="SignatureMethod")
    credential = _lookup(credentials, fields["SecretId"])
    sign_string = signing.v1_sign_string(method, headers.get("host", ""), fields, path)
    expected = signing.v1_signature(credential.secret_key, sign_string, sign_method)
    if not signing.signatures_equal(expected, fields["Signature"]):
        raise ApiError("AuthFailure.SignatureFailure")

    _check_target(fields["Action"], fields["Version"], fields.get("Region"), "")
    state.language = _check_language(fields.get("Language"), "Language")
    return ApiCall(
        action=fields["Action"],
        version=fields["Version"],
        region=fields.get("Region") or None,
        language=state.language,
        token=fields.get("Token") or None,
        secret_id=credential.secret_id,
        sign_method=sign_method,
        params={name: value for name, value in fields.items() if name not in COMMON_PARAMS},
        timestamp=timestamp,
        request_client=fields.get("RequestClient"),
        from_query=True,
    )


def parse_v1_query(query: str, host: str, path: str, *, now: float, credentials: CredentialLookup) -> ApiCall:
    """A v1-signed GET to ``path`` other than ``/`` (the stream, ``/v1/stream``): steps 2–13 of the table,
    the signature over ``GET + Host + path + "?" + …``; raises :class:`ApiError` as :func:`parse_request`."""
    state = _State()
    try:
        return _parse_v1("GET", query, {"host": host}, b"", now, credentials, state, path)
    except ApiError as error:
        if error.language is None:
            error.language = state.language
        raise


def _check_target(action: str | None, version: str | None, region: str | None, prefix: str) -> None:
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


def _check_language(value: str | None, name: str) -> str:
    if value is None or not value.strip():
        return DEFAULT_LANGUAGE
    language = normalize_language(value)
    if language is None:
        raise ApiError("InvalidParameterValue", detail=name)
    return language


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json_object(body: bytes, content_type: str) -> dict[str, Any]:
    if content_type != _JSON:
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


__all__ = [
    "ACTIONS",
    "COMMON_PARAMS",
    "DEFAULT_LANGUAGE",
    "LANGUAGES",
    "MAX_CLOCK_SKEW",
    "PROTOCOL_ERROR_CODES",
    "REGION_REQUIRED_VERSIONS",
    "VERSIONS",
    "ApiCall",
    "ApiError",
    "CredentialLookup",
    "envelope_for_error",
    "error_envelope",
    "message_for",
    "new_request_id",
    "normalize_language",
    "parse_request",
    "parse_v1_query",
    "success_envelope",
]
