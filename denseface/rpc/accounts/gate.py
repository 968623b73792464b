"""The account checks of one authenticated call, in the server's protocol path, before work is queued.

Order (first failure wins), after authentication and the protocol's action/version/format checks:

====  ==========================================================  ==========================================
step  check                                                       code
====  ==========================================================  ==========================================
1     the key's ``state`` is ``in-arrears`` / ``stopped`` /       ResourceUnavailable.InArrears / .StopUsing
      ``recovered``                                               / .Recover
2     the action is in the key's ``actions`` (when set)           ResourceUnavailable.NotReady
3     the store answers (in time)                                 ResourceUnavailable.UnknownStatus
4     the store holds denseface's marker                          ResourceUnavailable.NotExist
5     the store's records for the key are well-formed             ResourcesSoldOut.ChargeStatusException
6     the key's token bucket has a token (``qps``)                RequestLimitExceeded
7     successful calls + calls in flight < ``quota``              ResourceUnavailable.LowBalance
====  ==========================================================  ==========================================

Steps 3–7 are one atomic step in the store (:meth:`AccountStore.admit`); an admitted call holds one unit
of its quota until it is settled with its outcome. Only an ``OK`` is added to the used count, so a failed
call never consumes quota. A call refused at 1, 2, 6 or 7 is counted in the usage rows with its code.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from denseface.rpc.accounts.store import (
    ADMITTED,
    MALFORMED,
    AccountStore,
    Admission,
    StoreMalformed,
    StoreUnavailable,
    utc_day,
)
from denseface.rpc.credentials import STATE_CODES, Credential
from denseface.rpc.envelope import ApiError

log = logging.getLogger(__name__)
UNKNOWN_STATUS = "ResourceUnavailable.UnknownStatus"
NOT_READY = "ResourceUnavailable.NotReady"
#: Every code :meth:`Gate.admit` and :meth:`Gate.settle` can raise.
GATE_ERROR_CODES = frozenset(
    {
        *STATE_CODES.values(),
        NOT_READY,
        UNKNOWN_STATUS,
        "ResourceUnavailable.NotExist",
        MALFORMED,
        "RequestLimitExceeded",
        "ResourceUnavailable.LowBalance",
    }
)


@dataclass(frozen=True)
class Ticket:
    """An admitted call, to be settled once with its outcome."""

    secret_id: str
    request_id: str
    action: str
    day: str


class Gate:
    """Account state, allowed actions, rate and quota of each call, over one :class:`AccountStore`.

    ``default_qps`` applies to keys without their own ``qps`` (``None``: unlimited)."""

    def __init__(self, store: AccountStore, default_qps: float | None) -> None:
        self.store = store
        self.default_qps = default_qps
        #: wall time spent waiting for the store, and its calls (admit, settle, record): the metering cost
        self.store_seconds = 0.0
        self.store_calls = 0

    def _timed(self, started: float) -> None:
        self.store_seconds += time.perf_counter() - started
        self.store_calls += 1

    async def admit(self, credential: Credential, action: str, request_id: str) -> Ticket:
        day = utc_day(time.time())
        await self._refuse(credential, action, day)
        qps = credential.qps if credential.qps is not None else self.default_qps
        qps = qps or None  # 0 means unlimited, for a key as for DENSEFACE_QPS
        admission = Admission(credential.secret_id, request_id, action, qps, credential.quota)
        started = time.perf_counter()
        try:
            outcome = await self.store.admit(admission, day=day)
        except StoreUnavailable as exc:
            log.error("request %s: usage store unavailable: %s", request_id, exc)
            raise ApiError(UNKNOWN_STATUS) from exc
        finally:
            self._timed(started)
        if outcome == MALFORMED:
            log.error("request %s: malformed store records for %s", request_id, credential.secret_id)
        if outcome != ADMITTED:
            raise ApiError(outcome)
        return Ticket(credential.secret_id, request_id, action, day)

    async def _refuse(self, credential: Credential, action: str, day: str) -> None:
        """Steps 1 and 2: raise (and count) the key's state or action refusal, if any."""
        refusal = STATE_CODES.get(credential.state)
        if refusal is None and credential.actions is not None and action not in credential.actions:
            refusal = NOT_READY
        if refusal is not None:
            await self._record(credential.secret_id, action, refusal, day)
            raise ApiError(refusal, detail=action if refusal == NOT_READY else None)

    async def check(self, credential: Credential, action: str) -> None:
        """A live stream's admission, before its first frame: steps 1 and 2, then a quota already used
        up (``ResourceUnavailable.LowBalance``); takes no token and holds nothing (each frame is then
        admitted as one call)."""
        await self._refuse(credential, action, utc_day(time.time()))
        if credential.quota is None:
            return
        started = time.perf_counter()
        try:
            used = (await self.store.used([credential.secret_id])).get(credential.secret_id, 0)
        except StoreUnavailable as exc:
            raise ApiError(UNKNOWN_STATUS) from exc
        except StoreMalformed as exc:
            raise ApiError(MALFORMED) from exc
        finally:
            self._timed(started)
        if used >= credential.quota:
            raise ApiError("ResourceUnavailable.LowBalance")

    async def settle(self, ticket: Ticket, code: str, *, charge: bool | None = None) -> None:
        """Count the call's outcome and release its hold; ``charge``: add it to the used count (default:
        only an ``OK``; the server also charges a call whose job held a worker past the deadline). A
        successful call that cannot be counted (store unavailable or malformed) raises the code to
        answer instead: it was not counted."""
        started = time.perf_counter()
        charged = code == ADMITTED if charge is None else charge
        try:
            await self.store.settle(
                ticket.secret_id, ticket.request_id, ticket.action, code, day=ticket.day, charge=charged
            )
        except (StoreUnavailable, StoreMalformed) as exc:
            log.error("request %s: outcome %s not counted: %s", ticket.request_id, code, exc)
            if code == ADMITTED:
                unavailable = isinstance(exc, StoreUnavailable)
                raise ApiError(UNKNOWN_STATUS if unavailable else MALFORMED) from exc
        finally:
            self._timed(started)

    async def _record(self, secret_id: str, action: str, code: str, day: str) -> None:
        started = time.perf_counter()
        try:
            await self.store.record(secret_id, action, code, day=day)
        except (StoreUnavailable, StoreMalformed) as exc:
            log.warning("usage of %s (%s) not counted: %s", secret_id, code, exc)
        finally:
            self._timed(started)


__all__ = ["GATE_ERROR_CODES", "Gate", "Ticket"]
