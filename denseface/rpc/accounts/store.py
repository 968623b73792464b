"""The state interface: what every store (embedded SQLite, shared Redis) does, and nothing more.

A call that passed authentication and the account checks is **admitted** (one atomic step in the
store: the store's marker, the key's token bucket, its quota, a hold on one unit of quota) and later
**settled** with its outcome (the hold is released; an ``OK`` adds one to the key's used count; the
usage row for key × UTC day × action × outcome grows by one). A hold that is never settled (a server
killed mid-call) expires after ``hold`` seconds, so quota is never lost for good. Settling is idempotent:
a second settle of the same request (a retried command) counts nothing. The store also remembers each
signed v1 request's Nonce and Timestamp for as long as its timestamp is within the window, so a replay
is refused on every replica (:mod:`denseface.rpc.replay`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

#: Outcomes of :meth:`AccountStore.admit` other than ``ADMITTED``: the Tencent code to answer.
ADMITTED = "OK"
RATE_LIMITED = "RequestLimitExceeded"
USED_UP = "ResourceUnavailable.LowBalance"
NOT_A_STORE = "ResourceUnavailable.NotExist"
MALFORMED = "ResourcesSoldOut.ChargeStatusException"


class StoreUnavailable(Exception):
    """The store did not answer in time or refused the connection (Redis down, SQLite locked/unwritable)."""


class StoreMalformed(Exception):
    """The store holds a record for the key that is not what denseface writes (edited by hand?)."""


@dataclass(frozen=True)
class UsageRow:
    secret_id: str
    day: str  # UTC, YYYY-MM-DD
    action: str
    code: str  # "OK" or the error code answered
    calls: int


@dataclass(frozen=True)
class Admission:
    """What one call asks of the store. ``qps``/``quota`` ``None``: no limit."""

    secret_id: str
    request_id: str
    action: str
    qps: float | None
    quota: int | None


class AccountStore(Protocol):
    """Per-key quota, rate and usage state. Methods raise :class:`StoreUnavailable` or
    :class:`StoreMalformed`; nothing above this interface knows which store runs."""

    name: str

    async def start(self) -> None:
        """Ready the store for a server (Redis: write the marker if it is missing)."""
        ...

    async def ping(self) -> None:
        """Answer within the store's timeout or raise :class:`StoreUnavailable` (the readiness check)."""
        ...

    async def admit(self, admission: Admission, *, day: str) -> str:
        """``ADMITTED`` (one unit of quota held for the request) or the code refusing it. A refusal
        for rate or quota is counted in the usage rows at once."""
        ...

    async def settle(
        self, secret_id: str, request_id: str, action: str, code: str, *, day: str, charge: bool | None = None
    ) -> bool:
        """Release the request's hold and count its outcome (``charge``: add one to the used count;
        default: if ``code`` is ``OK``); ``False`` if it held nothing (already settled, or expired): then
        nothing is counted."""
        ...

    async def record(self, secret_id: str, action: str, code: str, *, day: str) -> None:
        """Count a call refused before admission (account state, action not allowed)."""
        ...

    async def remember_nonce(self, secret_id: str, nonce: str, ttl: float) -> bool:
        """Remember a signed request's ``nonce`` (v1: ``Nonce:Timestamp``) for ``ttl`` seconds; ``True``
        the first time, ``False`` while it is remembered (a replay). Shared by every replica."""
        ...

    async def used(self, secret_ids: list[str]) -> dict[str, int]:
        """Successful calls counted so far, per key (against its quota)."""
        ...

    async def usage(self, secret_id: str | None = None, since: str | None = None) -> list[UsageRow]:
        """Usage rows, optionally of one key and from one UTC day on, sorted."""
        ...

    async def close(self) -> None: ...


def utc_day(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).strftime("%Y-%m-%d")


__all__ = [
    "ADMITTED",
    "MALFORMED",
    "NOT_A_STORE",
    "RATE_LIMITED",
    "USED_UP",
    "AccountStore",
    "Admission",
    "StoreMalformed",
    "StoreUnavailable",
    "UsageRow",
    "utc_day",
]
