"""Tencent Cloud request signatures as pure functions: TC3-HMAC-SHA256 and the older v1 HmacSHA1/HmacSHA256.

The server-side verifier (:mod:`denseface.rpc.protocol`) and the client helper :func:`sign_tc3_request`
share every step, so a request signed here verifies there and vice versa::

    canonical request ──sha256──▶ string to sign ──HMAC(signing key)──▶ hex signature
    (method, query, headers,      (algorithm, timestamp,                  kDate = HMAC("TC3"+key, date)
     signed headers, payload)      credential scope)                      kSvc  = HMAC(kDate, service)
                                                                          kSign = HMAC(kSvc, "tc3_request")

v1 signs ``METHOD + Host + "/?" + sorted "k=v" pairs`` (``Signature`` excluded) and base64-encodes the HMAC.

What the official SDKs put in a TC3 signature differs, and the verifier accepts each of them:

===========================  ==================================  ====================================
client                       credential-scope service            ``host`` in the canonical headers
===========================  ==================================  ====================================
Python SDK, tccli, Go SDK    ``iai`` (the client's service)      the ``Host`` header, verbatim
Node.js SDK                  ``endpoint.split(".")[0]``          the URL's hostname (no port)
Java SDK                     the same split of its endpoint      the endpoint, verbatim
===========================  ==================================  ====================================

so at ``127.0.0.1:8000`` the Node.js and Java SDKs sign for service ``127``, at ``localhost:8000`` for
``localhost:8000`` (no dot: the port stays). :func:`service_accepted` is that rule.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

TC3_ALGORITHM = "TC3-HMAC-SHA256"
TC3_TERMINATOR = "tc3_request"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
V1_METHODS = ("HmacSHA1", "HmacSHA256")
DEFAULT_SERVICE = "iai"

_V1_DIGESTS = {"HmacSHA1": hashlib.sha1, "HmacSHA256": hashlib.sha256}
_HEX64 = re.compile(r"[0-9a-f]{64}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_HEADER_NAME = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+")
#: a credential-scope service: ``iai``, or what the Node.js/Java SDKs take from an endpoint (text before
#: its first ".": a DNS label, an IPv4 octet, or a dotless host that may keep its port or IPv6 brackets)
_SERVICE = re.compile(r"[A-Za-z0-9_:\[\]-]{1,128}")
_SCHEME = re.compile(r"https?://", re.IGNORECASE)
_PORT = re.compile(r":[0-9]*\Z")
_MAX_AUTHORIZATION_LEN = 4096


class AuthorizationFormatError(ValueError):
    """The ``Authorization`` header is not a well-formed TC3-HMAC-SHA256 credential."""


@dataclass(frozen=True)
class Tc3Authorization:
    """The parts of a TC3 ``Authorization`` header."""

    algorithm: str
    secret_id: str
    date: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


def _utf8(text: str) -> bytes:
    """UTF-8 bytes; lone surrogates (impossible in real HTTP text) are encoded rather than raising."""
    return text.encode("utf-8", "surrogatepass")


def sha256_hex(data: bytes) -> str:
    """Lowercase hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def utc_date(timestamp: int) -> str:
    """The UTC calendar date (``YYYY-MM-DD``) of a Unix timestamp, as used in the credential scope."""
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d")


def credential_scope(date: str, service: str = DEFAULT_SERVICE) -> str:
    """``<date>/<service>/tc3_request``."""
    return f"{date}/{service}/{TC3_TERMINATOR}"


def endpoint_service(host: str) -> str | None:
    """The credential-scope service the Node.js and Java SDKs derive from the endpoint this Host names.

    Both sign with ``endpoint.split(".")[0]``: ``iai.tencentcloudapi.com`` → ``iai``, ``127.0.0.1:8000``
    → ``127``, ``localhost:8000`` → ``localhost:8000``, ``faces.example.internal`` → ``faces``. A leading
    ``http://`` or ``https://`` (tccli's literal ``Host: http://127.0.0.1:8000``) is skipped first.
    ``None`` when no valid service remains (empty, a leading dot, a path, spaces, …).
    """
    text = host.strip()
    scheme = _SCHEME.match(text)
    if scheme is not None:
        text = text[scheme.end() :]
    label = text.split(".", 1)[0]
    return label if _SERVICE.fullmatch(label) else None


def service_accepted(service: str, host: str) -> bool:
    """Whether a TC3 credential scope may name ``service`` for a request with this ``Host`` header.

    ``iai`` (what the Python and Go SDKs and tccli sign with) always; otherwise only the service the
    Node.js and Java SDKs derive from this very Host (:func:`endpoint_service`, compared ignoring case,
    as host names are). Any other service, such as ``cvm`` or a label of another host, is refused.
    """
    if service == DEFAULT_SERVICE:
        return True
    derived = endpoint_service(host)
    return derived is not None and service.lower() == derived.lower()


def host_without_port(host: str) -> str:
    """The Host without a trailing ``:port`` (``[::1]:8000`` → ``[::1]``): what the Node.js SDK signs
    as ``host`` (its URL's ``hostname``) while it sends ``host:port``."""
    return _PORT.sub("", host.strip())


def canonical_headers(
    headers: Mapping[str, str], signed_headers: Sequence[str], *, lower_values: bool
) -> str:
    """``name:value\\n`` for every signed header, in the order given (callers pass them sorted).

    ``headers`` must have lowercase keys. The signature v3 document lowercases values; the official
    Python SDK does not (it writes ``Content-Type`` and ``Host`` verbatim), so the verifier tries both.
    Raises ``KeyError`` if a signed header is absent.
    """
    lines = []
    for name in signed_headers:
        value = headers[name].strip()
        lines.append(f"{name}:{value.lower() if lower_values else value}\n")
    return "".join(lines)


def tc3_canonical_request(
    method: str,
    query: str,
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    payload: bytes | None,
    *,
    lower_values: bool = True,
    payload_hash: str | None = None,
) -> str:
    """The TC3 canonical request.

    ``query`` is the raw query string exactly as received (empty for POST). ``payload`` is the body bytes;
    ``None`` means ``X-TC-Content-SHA256: UNSIGNED-PAYLOAD`` (the literal string is hashed instead).
    ``payload_hash``, if given, is used instead of hashing ``payload`` again.
    """
    if payload_hash is None:
        payload_hash = sha256_hex(UNSIGNED_PAYLOAD.encode("ascii") if payload is None else payload)
    return "\n".join(
        (
            method.upper(),
            "/",
            query,
            canonical_headers(headers, signed_headers, lower_values=lower_values),
            ";".join(signed_headers),
            payload_hash,
        )
    )


def tc3_canonical_variants(
    method: str,
    query: str,
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    payload: bytes | None,
    *,
    payload_hash: str | None = None,
) -> list[str]:
    """Every canonical request an official client may have signed for this request, sorted, unique.

    Header values lowercased (the signature v3 document) or verbatim (the Python SDK), and ``host``
    as received or without its port (the Node.js SDK signs its URL's hostname). ``headers`` must have
    lowercase keys; raises ``KeyError`` if a signed header is absent. ``payload_hash``, if given, is the
    body's hash (computed while it was read) instead of hashing ``payload``.
    """
    if payload_hash is None:
        payload_hash = sha256_hex(UNSIGNED_PAYLOAD.encode("ascii") if payload is None else payload)
    views = [headers]
    if "host" in signed_headers and host_without_port(headers["host"]) != headers["host"].strip():
        views.append({**headers, "host": host_without_port(headers["host"])})
    return sorted(
        {
            tc3_canonical_request(
                method, query, view, signed_headers, payload, lower_values=lower, payload_hash=payload_hash
            )
            for view in views
            for lower in (True, False)
        }
    )


def tc3_string_to_sign(timestamp: int | str, scope: str, canonical_request: str) -> str:
    """``TC3-HMAC-SHA256\\n<timestamp>\\n<scope>\\n<sha256 hex of canonical request>``."""
    digest = sha256_hex(_utf8(canonical_request))
    return f"{TC3_ALGORITHM}\n{timestamp}\n{scope}\n{digest}"


def tc3_signing_key(secret_key: str, date: str, service: str = DEFAULT_SERVICE) -> bytes:
    """The derived key: HMAC chain over date, service and ``tc3_request``."""
    k_date = hmac.new(_utf8("TC3" + secret_key), _utf8(date), hashlib.sha256).digest()
    k_service = hmac.new(k_date, _utf8(service), hashlib.sha256).digest()
    return hmac.new(k_service, _utf8(TC3_TERMINATOR), hashlib.sha256).digest()


def tc3_signature(signing_key: bytes, string_to_sign: str) -> str:
    """Lowercase hex HMAC-SHA256 of the string to sign."""
    return hmac.new(signing_key, _utf8(string_to_sign), hashlib.sha256).hexdigest()


def tc3_sign(
    secret_key: str,
    *,
    method: str,
    query: str,
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    payload: bytes | None,
    timestamp: int,
    service: str = DEFAULT_SERVICE,
    lower_values: bool = True,
) -> str:
    """Every TC3 step in one call: canonical request → string to sign → signing key → hex signature."""
    date = utc_date(timestamp)
    canonical = tc3_canonical_request(
        method, query, headers, signed_headers, payload, lower_values=lower_values
    )
    string_to_sign = tc3_string_to_sign(timestamp, credential_scope(date, service), canonical)
    return tc3_signature(tc3_signing_key(secret_key, date, service), string_to_sign)


def format_tc3_authorization(
    secret_id: str, date: str, service: str, signed_headers: Sequence[str], signature: str
) -> str:
    """The ``Authorization`` header value, in the SDK's exact layout."""
    return (
        f"{TC3_ALGORITHM} Credential={secret_id}/{date}/{service}/{TC3_TERMINATOR}, "
        f"SignedHeaders={';'.join(signed_headers)}, Signature={signature}"
    )


def parse_tc3_authorization(value: str) -> Tc3Authorization:
    """Split a TC3 ``Authorization`` header into its parts.

    Accepts ``TC3-HMAC-SHA256 Credential=<id>/<date>/<service>/tc3_request, SignedHeaders=a;b,
    Signature=<64 lowercase hex>`` with any spacing around the commas. ``SignedHeaders`` must be
    lowercase, sorted, unique and include ``content-type`` and ``host`` (as the SDK and the document
    always sign them). Anything else raises :class:`AuthorizationFormatError`.
    """
    if len(value) > _MAX_AUTHORIZATION_LEN:
        raise AuthorizationFormatError("Authorization header is too long")
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != TC3_ALGORITHM:
        raise AuthorizationFormatError(f"algorithm must be {TC3_ALGORITHM}")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, field_value = part.strip().partition("=")
        if not sep or name in fields:
            raise AuthorizationFormatError("expected Credential=…, SignedHeaders=…, Signature=…")
        fields[name] = field_value.strip()
    if set(fields) != {"Credential", "SignedHeaders", "Signature"}:
        raise AuthorizationFormatError("expected exactly Credential, SignedHeaders and Signature")

    scope = fields["Credential"].split("/")
    if len(scope) != 4 or scope[3] != TC3_TERMINATOR:
        raise AuthorizationFormatError("Credential must be <SecretId>/<Date>/<Service>/tc3_request")
    secret_id, date, service, _ = scope
    if not secret_id or not secret_id.isascii() or not secret_id.isprintable() or " " in secret_id:
        raise AuthorizationFormatError("Credential has an invalid SecretId")
    if not _DATE.fullmatch(date):
        raise AuthorizationFormatError("Credential date must be YYYY-MM-DD")
    if not _SERVICE.fullmatch(service):
        raise AuthorizationFormatError("Credential has an invalid service")

    signed = tuple(fields["SignedHeaders"].split(";"))
    if not all(_HEADER_NAME.fullmatch(name) for name in signed):
        raise AuthorizationFormatError("SignedHeaders must be lowercase header names separated by ';'")
    if list(signed) != sorted(set(signed)):
        raise AuthorizationFormatError("SignedHeaders must be sorted and unique")
    if "content-type" not in signed or "host" not in signed:
        raise AuthorizationFormatError("SignedHeaders must include content-type and host")

    signature = fields["Signature"]
    if not _HEX64.fullmatch(signature):
        raise AuthorizationFormatError("Signature must be 64 lowercase hex digits")
    return Tc3Authorization(algorithm, secret_id, date, service, signed, signature)


def v1_sign_string(method: str, host: str, params: Mapping[str, str], path: str = "/") -> str:
    """``METHOD + Host + path + "?" + "&".join(sorted "k=v")``, excluding ``Signature``.

    Values are the raw, URL-decoded strings. As in the official SDK, ``_`` in a parameter name is written
    as ``.`` (the pairs are sorted after that rewrite). ``path`` is ``/`` for the API; the stream signs
    its own (``/v1/stream``) the same way.
    """
    pairs = {key.replace("_", "."): value for key, value in params.items() if key != "Signature"}
    query = "&".join(f"{key}={pairs[key]}" for key in sorted(pairs))
    return f"{method.upper()}{host}{path}?{query}"


def v1_signature(secret_key: str, sign_string: str, sign_method: str = "HmacSHA1") -> str:
    """Base64 HMAC-SHA1 or HMAC-SHA256 of the sign string. Raises ``ValueError`` for another method."""
    digest = _V1_DIGESTS.get(sign_method)
    if digest is None:
        raise ValueError(f"sign method must be one of {', '.join(V1_METHODS)}")
    mac = hmac.new(_utf8(secret_key), _utf8(sign_string), digest).digest()
    return base64.b64encode(mac).decode("ascii")


def signatures_equal(expected: str, given: str) -> bool:
    """Constant-time comparison of two signatures (any text)."""
    return hmac.compare_digest(_utf8(expected), _utf8(given))


def sign_tc3_request(
    secret_id: str,
    secret_key: str,
    *,
    host: str,
    action: str,
    version: str,
    timestamp: int,
    method: str = "POST",
    payload: bytes = b"",
    query: str = "",
    region: str | None = None,
    token: str | None = None,
    language: str | None = None,
    content_type: str | None = None,
    unsigned_payload: bool = False,
    service: str = DEFAULT_SERVICE,
) -> dict[str, str]:
    """Headers for a TC3-signed request, laid out as the official SDK sends them.

    ``payload`` is the JSON body for POST; for GET pass the url-encoded ``query`` and leave ``payload``
    empty. ``content_type`` defaults to ``application/json`` (POST) or ``application/x-www-form-urlencoded``
    (GET). Only ``content-type`` and ``host`` are signed, as in the SDK.
    """
    method = method.upper()
    if content_type is None:
        content_type = "application/x-www-form-urlencoded" if method == "GET" else "application/json"
    signed_headers = ("content-type", "host")
    signature = tc3_sign(
        secret_key,
        method=method,
        query=query if method == "GET" else "",
        headers={"content-type": content_type, "host": host},
        signed_headers=signed_headers,
        payload=None if unsigned_payload else (b"" if method == "GET" else payload),
        timestamp=timestamp,
        service=service,
    )
    headers = {
        "Content-Type": content_type,
        "Host": host,
        "X-TC-Action": action,
        "X-TC-Timestamp": str(timestamp),
        "X-TC-Version": version,
        "Authorization": format_tc3_authorization(
            secret_id, utc_date(timestamp), service, signed_headers, signature
        ),
    }
    if unsigned_payload:
        headers["X-TC-Content-SHA256"] = UNSIGNED_PAYLOAD
    if region:
        headers["X-TC-Region"] = region
    if token:
        headers["X-TC-Token"] = token
    if language:
        headers["X-TC-Language"] = language
    return headers


__all__ = [
    "DEFAULT_SERVICE",
    "TC3_ALGORITHM",
    "UNSIGNED_PAYLOAD",
    "V1_METHODS",
    "AuthorizationFormatError",
    "Tc3Authorization",
    "canonical_headers",
    "credential_scope",
    "endpoint_service",
    "format_tc3_authorization",
    "host_without_port",
    "parse_tc3_authorization",
    "service_accepted",
    "sha256_hex",
    "sign_tc3_request",
    "signatures_equal",
    "tc3_canonical_request",
    "tc3_canonical_variants",
    "tc3_sign",
    "tc3_signature",
    "tc3_signing_key",
    "tc3_string_to_sign",
    "utc_date",
    "v1_sign_string",
    "v1_signature",
]
