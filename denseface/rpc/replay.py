"""Replay protection for v1 requests: a signed request's ``Nonce`` and ``Timestamp`` are remembered in
the state store (SQLite or the Redis every replica shares) for as long as the timestamp is inside the
window (:data:`~denseface.rpc.protocol.MAX_CLOCK_SKEW`, past or future), so the same signed request is
accepted once. TC3 has no nonce: its signature covers the timestamp and the body, and Tencent documents
no replay check for it; neither does denseface.

A repeat is answered ``AuthFailure.SignatureExpire`` (Tencent documents no code for a replay: this is
the one a client already treats as "sign a fresh request"), with its own message. Checked after the
signature (so a stranger cannot burn another caller's nonces) and before the account checks (so a
replay never spends the key's quota). Transport-neutral: the HTTP API and a v1-signed WebSocket query
string call :func:`check_replay` the same way.
"""

from __future__ import annotations

import logging

from denseface.rpc.accounts.gate import UNKNOWN_STATUS
from denseface.rpc.accounts.store import AccountStore, StoreUnavailable
from denseface.rpc.envelope import ApiError, message_for
from denseface.rpc.protocol import MAX_CLOCK_SKEW, ApiCall

log = logging.getLogger(__name__)
REPLAY_CODE = "AuthFailure.SignatureExpire"
REPLAY_MESSAGE = "AuthFailure.SignatureExpire.Replay"  # its entry in messages.json


async def check_replay(store: AccountStore, call: ApiCall, *, now: float) -> None:
    """Raise ``AuthFailure.SignatureExpire`` if this v1 call's Nonce and Timestamp were seen in the
    window; remember them otherwise. ``ResourceUnavailable.UnknownStatus`` if the store cannot answer
    (a replay cannot be ruled out, so the call is not served)."""
    if call.nonce is None:
        return
    ttl = call.timestamp + MAX_CLOCK_SKEW - now + 1.0  # until the timestamp leaves the window
    try:
        fresh = await store.remember_nonce(call.secret_id, f"{call.nonce}:{call.timestamp}", ttl)
    except StoreUnavailable as exc:
        log.error("replay check of %s not possible: %s", call.secret_id, exc)
        raise ApiError(UNKNOWN_STATUS, language=call.language) from exc
    if not fresh:
        message = message_for(REPLAY_MESSAGE, call.language)
        raise ApiError(REPLAY_CODE, message, language=call.language)


__all__ = ["REPLAY_CODE", "check_replay"]
