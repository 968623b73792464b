"""The live stream's authentication (``GET /v1/stream``, a WebSocket): a Tencent v1 GET signature in the
query string, checked by :func:`verify_stream_query`, and :func:`stream_url` to sign one as a client.

Parameters (all in the query string, values URL-encoded on the wire, signed as sent before encoding)::

    Action=AnalyzeDenseLandmarks  Version=2018-03-01|2020-03-03  SecretId  Timestamp  Nonce
    SignatureMethod=HmacSHA256 (or HmacSHA1)  Region (required by 2020-03-03)  Mode=0|1 (optional)
    Signature = base64 HMAC(SecretKey, "GET" + Host + "/v1/stream?" + the others sorted, joined k=v&…)

The same checks, in the same order and with the same codes, as a v1 call to ``/``
(:func:`denseface.rpc.protocol.parse_v1_query`: sizes, required names, Timestamp within 300 s, Nonce an
integer, SignatureMethod, SecretId known and enabled, the signature, Action/Version/Region, Language);
then this module's own: the action must be ``AnalyzeDenseLandmarks`` (another iai action is
``InvalidParameterValue``), and the only action parameter is ``Mode`` (another is ``UnknownParameter``;
a Mode that is not 0/1 is ``InvalidParameter.InvalidParameter`` / ``InvalidParameterValue``, as the
action's). Account state, allowed actions, rate and quota are the server's (:mod:`denseface.rpc.accounts`).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

from denseface.rpc import signing
from denseface.rpc.actions.common import WRONG_TYPE
from denseface.rpc.envelope import ApiError
from denseface.rpc.protocol import ApiCall, CredentialLookup, parse_v1_query

STREAM_PATH = "/v1/stream"
STREAM_ACTION = "AnalyzeDenseLandmarks"
STREAM_PARAMS = frozenset({"Mode"})


@dataclass(frozen=True)
class StreamCall:
    """An authenticated stream: who, which version and region, Mode (1: the largest face only)."""

    secret_id: str
    action: str
    version: str
    region: str | None
    language: str
    mode: int
    timestamp: int
    #: the authenticated v1 call itself: its Nonce and Timestamp for the replay check
    call: ApiCall | None = field(default=None, repr=False, compare=False)


def verify_stream_query(
    query: str, host: str, *, now: float, credentials: CredentialLookup, path: str = STREAM_PATH
) -> StreamCall:
    """Authenticate a stream's query string (raw, without ``?``) sent to ``host`` (the ``Host`` header,
    verbatim); raise :class:`ApiError` with the Tencent code of the first failed check."""
    call = parse_v1_query(query, host, path, now=now, credentials=credentials)
    try:
        if call.action != STREAM_ACTION:
            raise ApiError(
                "InvalidParameterValue", detail=f"Action {call.action} (a stream runs {STREAM_ACTION})"
            )
        unknown = sorted(name for name in call.params if name not in STREAM_PARAMS)
        if unknown:
            raise ApiError("UnknownParameter", detail=unknown[0])
        mode = str(call.params.get("Mode", "0") or "0")
        if not mode.lstrip("-").isdigit() or len(mode) > 18:
            raise ApiError(WRONG_TYPE, detail="Mode")
        if int(mode) not in (0, 1):
            raise ApiError("InvalidParameterValue", detail="Mode")
    except ApiError as error:
        error.language = call.language
        raise
    return StreamCall(
        call.secret_id, call.action, call.version, call.region, call.language, int(mode), call.timestamp, call
    )


def stream_query(
    secret_id: str,
    secret_key: str,
    *,
    host: str,
    version: str = "2020-03-03",
    region: str | None = "ap-guangzhou",
    mode: int = 0,
    timestamp: int | None = None,
    nonce: int | None = None,
    sign_method: str = "HmacSHA256",
    extra: Mapping[str, str] | None = None,
) -> str:
    """The signed, URL-encoded query string of a stream for ``host`` (``name:port`` as the client will
    send it in ``Host``). ``extra``: more parameters to sign (``Language``; tests use others)."""
    params = {
        "Action": STREAM_ACTION,
        "Version": version,
        "SecretId": secret_id,
        "Timestamp": str(int(time.time()) if timestamp is None else timestamp),
        "Nonce": str(secrets.randbelow(2**31 - 1) + 1 if nonce is None else nonce),
        "SignatureMethod": sign_method,
        "Mode": str(mode),
        **(extra or {}),
    }
    if region:
        params["Region"] = region
    sign_string = signing.v1_sign_string("GET", host, params, STREAM_PATH)
    params["Signature"] = signing.v1_signature(secret_key, sign_string, sign_method)
    return urlencode(params)


def stream_url(
    secret_id: str,
    secret_key: str,
    *,
    host: str,
    secure: bool = False,
    version: str = "2020-03-03",
    region: str | None = "ap-guangzhou",
    mode: int = 0,
) -> str:
    """``ws://host/v1/stream?…`` (``wss://`` when ``secure``), signed now with a fresh Nonce (connect
    within 300 s); the other arguments as :func:`stream_query`."""
    query = stream_query(secret_id, secret_key, host=host, version=version, region=region, mode=mode)
    return f"{'wss' if secure else 'ws'}://{host}{STREAM_PATH}?{query}"


__all__ = [
    "STREAM_ACTION",
    "STREAM_PATH",
    "StreamCall",
    "stream_query",
    "stream_url",
    "verify_stream_query",
]
