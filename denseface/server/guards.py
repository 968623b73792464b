"""What one client address and one key may hold at once, in this server process.

* :class:`ClientGuard` — traffic not (yet) authenticated, per client address: each request refused
  before its signature was verified costs the address a token (``rate``/s, ``burst``); an address out of
  tokens is refused at once with ``RequestLimitExceeded.IPLimitExceeded``, before anything is parsed.
  A body read before its signature can be checked (a TC3 POST naming a known key, a v1 POST form) holds
  bytes of a budget shared by all addresses (``budget``) and of its address's share (``per_client``);
  a request waits for room (within the connection's body deadline), so one address never takes it all.
  Signed, verified traffic costs no token and holds no budget.
* :class:`KeySlots` — per key: at most ``concurrency`` calls past authentication at once (the key's
  own ``concurrency``, else the server's default; more: ``RequestLimitExceeded``). A key whose calls hit
  the deadline ``strikes`` times within ``strike_window`` seconds is held to one call at a time until
  they age out: a job that takes a worker for the whole deadline is not free to repeat.
* :func:`read_body` — the body, bounded, hashed (SHA-256) as it arrives: the TC3 signature check needs
  no second pass.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from denseface.rpc.envelope import ApiError

IP_LIMITED = "RequestLimitExceeded.IPLimitExceeded"
_MAX_TRACKED = 65536  # addresses remembered at once (older full buckets are forgotten first)


class ClientGuard:
    """Per-address refusal rate and pre-authentication body budget. ``rate`` 0: no refusal limit."""

    def __init__(
        self,
        *,
        rate: float = 20.0,
        burst: float = 200.0,
        budget: int = 64 * 1024 * 1024,
        per_client: int = 16 * 1024 * 1024,
        wait: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate, self.burst = rate, max(1.0, burst)
        self.wait = wait
        self.budget, self.per_client = budget, min(per_client, budget)
        self._clock = clock
        self._buckets: collections.OrderedDict[str, tuple[float, float]] = collections.OrderedDict()
        self._held: dict[str, int] = {}
        self._total = 0
        self._room = asyncio.Condition()

    # ------------------------------------------------------------------------------------ refusal rate
    def _level(self, client: str) -> float:
        tokens, since = self._buckets.get(client, (self.burst, self._clock()))
        return min(self.burst, tokens + (self._clock() - since) * self.rate)

    def check(self, client: str) -> None:
        """Refuse an address that spent its refusals (``RequestLimitExceeded.IPLimitExceeded``)."""
        if self.rate > 0 and client in self._buckets and self._level(client) < 1.0:
            raise ApiError(IP_LIMITED)

    def refused(self, client: str) -> None:
        """Count one request from ``client`` refused before its signature was verified."""
        if self.rate <= 0:
            return
        level = self._level(client) - 1.0
        self._buckets[client] = (level, self._clock())
        self._buckets.move_to_end(client)
        while len(self._buckets) > _MAX_TRACKED:
            self._buckets.popitem(last=False)

    # ----------------------------------------------------------------------------- pre-auth body budget
    async def hold(self, client: str, size: int) -> int:
        """Wait (at most ``wait`` s, else ``RequestLimitExceeded``) until ``size`` bytes (capped at the
        address's share) fit; the amount held, to :meth:`release`."""
        size = min(size, self.per_client)

        def fits() -> bool:
            return self._total + size <= self.budget and self._held.get(client, 0) + size <= self.per_client

        async with self._room:
            try:
                await asyncio.wait_for(self._room.wait_for(fits), self.wait)
            except asyncio.TimeoutError:
                raise ApiError("RequestLimitExceeded", detail="server busy") from None
            self._total += size
            self._held[client] = self._held.get(client, 0) + size
        return size

    async def release(self, client: str, size: int) -> None:
        if size <= 0:
            return
        async with self._room:
            self._total -= size
            left = self._held.get(client, 0) - size
            if left > 0:
                self._held[client] = left
            else:
                self._held.pop(client, None)
            self._room.notify_all()

    @property
    def held(self) -> int:
        return self._total


class KeySlots:
    """Per-key calls in progress, and deadline strikes."""

    def __init__(
        self,
        default: int = 32,
        *,
        strikes: int = 3,
        strike_window: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.default = default
        self.strikes, self.strike_window = strikes, strike_window
        self._clock = clock
        self._busy: dict[str, int] = {}
        self._hits: dict[str, collections.deque[float]] = {}

    def limit(self, secret_id: str, own: int | None) -> int:
        """The calls ``secret_id`` may have in progress now."""
        hits = self._hits.get(secret_id)
        if hits:
            while hits and hits[0] <= self._clock() - self.strike_window:
                hits.popleft()
            if len(hits) >= self.strikes:
                return 1
            if not hits:
                del self._hits[secret_id]
        return own if own is not None else self.default

    def check(self, secret_id: str, own: int | None) -> None:
        """``RequestLimitExceeded`` if ``secret_id`` has no free slot now (nothing is taken)."""
        limit = self.limit(secret_id, own)
        if self._busy.get(secret_id, 0) >= limit:
            raise ApiError("RequestLimitExceeded", detail=f"{limit} call(s) of this key in progress")

    def acquire(self, secret_id: str, own: int | None) -> None:
        self.check(secret_id, own)
        self._busy[secret_id] = self._busy.get(secret_id, 0) + 1

    def release(self, secret_id: str) -> None:
        left = self._busy.get(secret_id, 0) - 1
        if left > 0:
            self._busy[secret_id] = left
        else:
            self._busy.pop(secret_id, None)

    def strike(self, secret_id: str) -> None:
        """Count a call of ``secret_id`` that hit the deadline."""
        self._hits.setdefault(secret_id, collections.deque()).append(self._clock())

    def in_progress(self, secret_id: str) -> int:
        return self._busy.get(secret_id, 0)


async def read_body(
    receive: Callable[[], Awaitable[MutableMapping[str, Any]]], limit: int
) -> tuple[bytes, str]:
    """The request body (at most ``limit`` bytes, else ``RequestSizeLimitExceeded``) and its SHA-256
    (hex). ``ClientDisconnect``-like: raises :class:`ConnectionResetError` if the client hung up."""
    digest = hashlib.sha256()
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionResetError("the client disconnected while sending its body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ApiError("RequestSizeLimitExceeded")
        if chunk:
            digest.update(chunk)
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), digest.hexdigest()


__all__ = ["IP_LIMITED", "ClientGuard", "KeySlots", "read_body"]
