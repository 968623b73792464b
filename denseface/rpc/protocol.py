"""The Tencent Cloud API 3.0 request protocol, transport-neutral: raw request in, :class:`ApiCall` or
:class:`ApiError` out. No HTTP framework and no model code here.

Request forms (Tencent Cloud API 3.0): TC3-HMAC-SHA256 over POST JSON or GET query, and v1
(HmacSHA1/HmacSHA256 with a ``Signature`` parameter) over GET query or POST form. A request with an
``Authorization`` header is TC3; without one, a GET or a form POST is v1 and anything else is TC3 with a
missing header (``AuthFailure.InvalidAuthorization``).

Checks run in this order, first failure wins. Authentication comes before action/version/parameter
checks, so an unauthenticated caller learns nothing about what the server supports. They run in two
stages, so a server refuses most bad requests before it reads a byte of their body: :func:`preflight`
(steps 1–7 from the request line and headers: ``Content-Length`` stands in for the body's size; a v1 POST
form, whose fields are in its body, only gets steps 1–2 there) and :func:`complete` (the rest, over the
body; the server streams the body into its SHA-256 as it reads it). :func:`parse_request` runs both.

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
 8     signature matches (constant-time; a v1 Signature's trailing  AuthFailure.SignatureFailure
       whitespace is ignored: Ruby's SDK ends it with "\\n")
 8b    (not here: v1 Nonce + Timestamp not seen before in the       AuthFailure.SignatureExpire
       window, :mod:`denseface.rpc.replay`, in the state store)
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

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from denseface.rpc import signing
from denseface.rpc.catalog import REGION_REQUIRED_VERSIONS, VERSIONS
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
from denseface.rpc.fields import (
    ACTIONS,
    MAX_FIELDS,
    check_language,
    check_target,
    decode_pairs,
    integer,
    json_object,
)

if TYPE_CHECKING:
    from denseface.rpc.credentials import Credential

MAX_CLOCK_SKEW = 300
MAX_QUERY_BYTES = 32 * 1024
MAX_V1_BODY_BYTES = 1024 * 1024
MAX_TC3_BODY_BYTES = 10 * 1024 * 1024
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
_FORM = "application/x-www-form-urlencoded"
_V1_SIGNATURE_PADDING = " \t\r\n"  # Ruby's SDK signs with Base64.encode64, which ends in "\n"


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
    #: the v1 ``Nonce`` (``None`` for TC3, which has none): with ``timestamp``, what a replay repeats
    nonce: int | None = None


@dataclass(frozen=True)
class Preflight:
    """What :func:`preflight` found from the request line and headers, for :func:`complete`.

    ``credential`` is the key the request names (``None`` for a v1 POST form: its SecretId is in the
    body). ``body_limit``: the most body bytes to read (0 for GET: its body is ignored)."""

    method: str
    query: str
    headers: Mapping[str, str] = field(repr=False)
    content_type: str
    form: str  # "tc3" or "v1"
    body_limit: int
    language: str
    credential: Credential | None = None
    auth: signing.Tc3Authorization | None = None
    fields: dict[str, str] | None = field(default=None, repr=False)  # a v1 GET's decoded query
    path: str = "/"  # what a v1 signature signs after the Host: "/" for the API, the stream's own path

    @property
    def needs_body(self) -> bool:
        return self.method == "POST"


# ------------------------------------------------------------------------------------------------ parser
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
    pre = preflight(method, query, headers, content_length=len(body), now=now, credentials=credentials)
    return complete(pre, body, now=now, credentials=credentials)


def preflight(
    method: str,
    query: str,
    headers: Mapping[str, str],
    *,
    content_length: int | None,
    now: float,
    credentials: CredentialLookup,
) -> Preflight:
    """Steps 1–7 without the body: the request line, the headers, the declared ``content_length``
    (``None``: chunked, checked while the body is read), the key's existence and the timestamp window.
    A v1 GET is checked here as far as its signature; a v1 POST form only for method and size."""
    lowered = {name.lower(): value for name, value in headers.items()}
    language = DEFAULT_LANGUAGE
    try:
        if method not in ("GET", "POST"):
            raise ApiError("UnsupportedProtocol", detail=method)
        content_type = lowered.get("content-type", "").split(";", 1)[0].strip().lower()
        if "authorization" in lowered or not (method == "GET" or content_type == _FORM):
            language = normalize_language(lowered.get("x-tc-language")) or DEFAULT_LANGUAGE
            _check_sizes(method, query, content_length, MAX_TC3_BODY_BYTES)
            auth, credential = _tc3_headers(lowered, now, credentials)
            return Preflight(
                method, query, lowered, content_type, "tc3", _limit(method, MAX_TC3_BODY_BYTES), language,
                credential, auth,
            )  # fmt: skip
        _check_sizes(method, query, content_length, MAX_V1_BODY_BYTES)
        pre = Preflight(
            method, query, lowered, content_type, "v1", _limit(method, MAX_V1_BODY_BYTES), language
        )
        if method == "POST":
            return pre
        fields = decode_pairs(query)
        language = normalize_language(fields.get("Language")) or DEFAULT_LANGUAGE
        credential = _v1_key(fields, now, credentials)
        return Preflight(method, query, lowered, content_type, "v1", 0, language, credential, fields=fields)
    except ApiError as error:
        error.language = error.language or language
        raise


def complete(
    pre: Preflight,
    body: bytes,
    *,
    now: float,
    credentials: CredentialLookup,
    body_sha256: str | None = None,
) -> ApiCall:
    """Steps 8–14 over the body (read within ``pre.body_limit``; ``body_sha256``: its hash, if the
    reader computed it while reading). Raises :class:`ApiError` in the request's language."""
    language = pre.language
    try:
        if pre.needs_body and len(body) > pre.body_limit:
            raise ApiError("RequestSizeLimitExceeded")
        if pre.form == "tc3":
            return _complete_tc3(pre, body, body_sha256)
        fields = pre.fields
        credential = pre.credential
        if fields is None or credential is None:  # a v1 POST form: its fields are the body
            fields = decode_pairs(body)
            language = normalize_language(fields.get("Language")) or DEFAULT_LANGUAGE
            credential = _v1_key(fields, now, credentials)
        return _complete_v1(pre, fields, credential)
    except ApiError as error:
        error.language = error.language or language
        raise


def parse_v1_query(query: str, host: str, path: str, *, now: float, credentials: CredentialLookup) -> ApiCall:
    """A v1-signed GET to ``path`` other than ``/`` (the stream, ``/v1/stream``): steps 1–14, the
    signature over ``GET + Host + path + "?" + …``. The replay check (step 8b) is the caller's, as for
    :func:`parse_request`. Raises :class:`ApiError` as :func:`parse_request` does."""
    pre = preflight("GET", query, {"host": host}, content_length=0, now=now, credentials=credentials)
    return complete(replace(pre, path=path), b"", now=now, credentials=credentials)


def _limit(method: str, limit: int) -> int:
    return limit if method == "POST" else 0


def _check_sizes(method: str, query: str, content_length: int | None, body_limit: int) -> None:
    too_long = method == "POST" and content_length is not None and content_length > body_limit
    if len(query) > MAX_QUERY_BYTES or too_long:
        raise ApiError("RequestSizeLimitExceeded")


def check_skew(timestamp: int, now: float) -> None:
    """Past and future alike: more than :data:`MAX_CLOCK_SKEW` seconds away is expired."""
    if abs(now - timestamp) > MAX_CLOCK_SKEW:
        raise ApiError("AuthFailure.SignatureExpire")


def lookup(credentials: CredentialLookup, secret_id: str) -> Credential:
    """The enabled key with this SecretId, else ``AuthFailure.SecretIdNotFound``."""
    credential = credentials.get(secret_id)
    if credential is None or not credential.enabled:
        raise ApiError("AuthFailure.SecretIdNotFound")
    return credential


def _tc3_headers(
    headers: Mapping[str, str], now: float, credentials: CredentialLookup
) -> tuple[signing.Tc3Authorization, Credential]:
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
    timestamp = integer(raw_timestamp, "X-TC-Timestamp")
    check_skew(timestamp, now)
    if auth.date != signing.utc_date(timestamp) or not signing.service_accepted(
        auth.service, headers.get("host", "")
    ):
        raise ApiError("AuthFailure.SignatureFailure")
    return auth, lookup(credentials, auth.secret_id)


def _complete_tc3(pre: Preflight, body: bytes, body_sha256: str | None) -> ApiCall:
    headers, auth, credential = pre.headers, pre.auth, pre.credential
    if auth is None or credential is None:
        raise ValueError("a TC3 preflight always names its key")
    raw_timestamp = headers.get("x-tc-timestamp", "").strip()
    unsigned = headers.get("x-tc-content-sha256", "").strip().upper() == signing.UNSIGNED_PAYLOAD
    canonical_query = pre.query if pre.method == "GET" else ""
    if unsigned:
        payload_hash = signing.sha256_hex(signing.UNSIGNED_PAYLOAD.encode("ascii"))
    elif pre.method == "GET":
        payload_hash = signing.sha256_hex(b"")
    else:
        payload_hash = body_sha256 or signing.sha256_hex(body)
    key = signing.tc3_signing_key(credential.secret_key, auth.date, auth.service)
    scope = signing.credential_scope(auth.date, auth.service)
    matched = False
    for canonical in signing.tc3_canonical_variants(
        pre.method, canonical_query, headers, auth.signed_headers, None, payload_hash=payload_hash
    ):
        expected = signing.tc3_signature(key, signing.tc3_string_to_sign(raw_timestamp, scope, canonical))
        matched |= signing.signatures_equal(expected, auth.signature)
    if not matched:
        raise ApiError("AuthFailure.SignatureFailure")

    action, version, region = (headers.get(f"x-tc-{name}") for name in ("action", "version", "region"))
    check_target(action, version, region, "X-TC-")
    language = check_language(headers.get("x-tc-language"), "X-TC-Language")
    if pre.method == "GET":
        params: dict[str, Any] = {
            name: value for name, value in decode_pairs(pre.query).items() if name not in COMMON_PARAMS
        }
    else:
        try:
            params = json_object(body, pre.content_type)
        except ApiError as error:
            error.language = language
            raise
    return ApiCall(
        action=str(action),
        version=str(version),
        region=region or None,
        language=language,
        token=headers.get("x-tc-token") or None,
        secret_id=credential.secret_id,
        sign_method=signing.TC3_ALGORITHM,
        params=params,
        timestamp=integer(raw_timestamp, "X-TC-Timestamp"),
        request_client=headers.get("x-tc-requestclient"),
        from_query=pre.method == "GET",
    )


def _v1_key(fields: Mapping[str, str], now: float, credentials: CredentialLookup) -> Credential:
    for name in V1_REQUIRED:
        if not fields.get(name):
            raise ApiError("MissingParameter", detail=name)
    timestamp = integer(fields["Timestamp"], "Timestamp")
    integer(fields["Nonce"], "Nonce")
    check_skew(timestamp, now)
    if (fields.get("SignatureMethod") or "HmacSHA1") not in signing.V1_METHODS:
        raise ApiError("InvalidParameterValue", detail="SignatureMethod")
    return lookup(credentials, fields["SecretId"])


def _complete_v1(pre: Preflight, fields: dict[str, str], credential: Credential) -> ApiCall:
    sign_method = fields.get("SignatureMethod") or "HmacSHA1"
    sign_string = signing.v1_sign_string(pre.method, pre.headers.get("host", ""), fields, pre.path)
    expected = signing.v1_signature(credential.secret_key, sign_string, sign_method)
    if not signing.signatures_equal(expected, fields["Signature"].rstrip(_V1_SIGNATURE_PADDING)):
        raise ApiError("AuthFailure.SignatureFailure")

    check_target(fields["Action"], fields["Version"], fields.get("Region"), "")
    language = check_language(fields.get("Language"), "Language")
    return ApiCall(
        action=fields["Action"],
        version=fields["Version"],
        region=fields.get("Region") or None,
        language=language,
        token=fields.get("Token") or None,
        secret_id=credential.secret_id,
        sign_method=sign_method,
        params={name: value for name, value in fields.items() if name not in COMMON_PARAMS},
        timestamp=int(fields["Timestamp"]),
        request_client=fields.get("RequestClient"),
        from_query=True,
        nonce=int(fields["Nonce"]),
    )


__all__ = [
    "ACTIONS",
    "COMMON_PARAMS",
    "DEFAULT_LANGUAGE",
    "LANGUAGES",
    "MAX_CLOCK_SKEW",
    "MAX_FIELDS",
    "PROTOCOL_ERROR_CODES",
    "REGION_REQUIRED_VERSIONS",
    "VERSIONS",
    "ApiCall",
    "ApiError",
    "CredentialLookup",
    "Preflight",
    "check_skew",
    "complete",
    "envelope_for_error",
    "error_envelope",
    "lookup",
    "message_for",
    "new_request_id",
    "normalize_language",
    "parse_request",
    "parse_v1_query",
    "preflight",
    "success_envelope",
]
