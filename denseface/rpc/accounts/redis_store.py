"""The shared store: one Redis (``DENSEFACE_REDIS_URL``) for every replica.

Each admit and each settle is one Lua script (``EVALSHA``), so a key's token bucket, quota and holds
change atomically in Redis, whichever replica serves the call, however many calls race. The bucket's
clock is Redis's own ``TIME`` (replicas' clocks do not matter). Keys (``df:`` prefix, a single Redis or
a primary with replicas; not Redis Cluster)::

    df:store                      the marker written by the servers at start (missing: NotExist)
    df:used:<SecretId>            successful calls counted, an integer
    df:holds:<SecretId>           sorted set: RequestId → expiry of the hold (Redis time)
    df:bucket:<SecretId>          hash: tokens, ts (expires when full again)
    df:usage:<SecretId>:<day>     hash: "<Action> <Code>" → calls
    df:nonce:<SecretId>:<nonce>   a signed v1 request's Nonce:Timestamp, for as long as it may be replayed

Every command has a reply timeout (0.5 s by default) and opening a connection one of 2 s (a name
lookup and a TCP, maybe TLS, handshake: slower than a command on a busy host, as when a burst of calls
opens the pool's connections at once), and a command is retried once, so a Redis that is down or hung
costs a bounded time (about 1 s when it hangs, 4 s when it cannot be reached at all) and answers
``ResourceUnavailable.UnknownStatus``; the next call after it returns works again. Admit and settle are
idempotent per RequestId, so the retry never counts twice.
"""

from __future__ import annotations

import logging
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from denseface.rpc.accounts.store import (
    MALFORMED,
    Admission,
    StoreMalformed,
    StoreUnavailable,
    UsageRow,
)

log = logging.getLogger(__name__)
PREFIX = "df:"
MARKER = PREFIX + "store"
DEFAULT_TIMEOUT = 0.5
CONNECT_TIMEOUT = 2.0

_ADMIT = """
-- KEYS: marker, used, holds, bucket, usage; ARGV: request id, qps (0 = none), quota (-1 = none),
-- hold seconds, action
if redis.call('EXISTS', KEYS[1]) == 0 then return 'ResourceUnavailable.NotExist' end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
if redis.call('ZSCORE', KEYS[3], ARGV[1]) then return 'OK' end
local used = redis.call('GET', KEYS[2])
if used and not string.match(used, '^%d+$') then return 'ResourcesSoldOut.ChargeStatusException' end
used = tonumber(used) or 0
local qps = tonumber(ARGV[2])
if qps > 0 then
  local capacity = math.max(1, qps)
  local b = redis.call('HMGET', KEYS[4], 'tokens', 'ts')
  local tokens = tonumber(b[1]) or capacity
  local ts = tonumber(b[2]) or now
  tokens = math.min(capacity, tokens + math.max(0, now - ts) * qps)
  local allowed = tokens >= 1
  if allowed then tokens = tokens - 1 end
  redis.call('HSET', KEYS[4], 'tokens', tostring(tokens), 'ts', tostring(now))
  redis.call('PEXPIRE', KEYS[4], math.ceil(capacity / qps * 1000) + 1000)
  if not allowed then
    redis.call('HINCRBY', KEYS[5], ARGV[5] .. ' RequestLimitExceeded', 1)
    return 'RequestLimitExceeded'
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local quota = tonumber(ARGV[3])
if quota >= 0 and used + redis.call('ZCARD', KEYS[3]) >= quota then
  redis.call('HINCRBY', KEYS[5], ARGV[5] .. ' ResourceUnavailable.LowBalance', 1)
  return 'ResourceUnavailable.LowBalance'
end
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), ARGV[1])
return 'OK'
"""

_SETTLE = """
-- KEYS: used, holds, usage; ARGV: request id, "<Action> <Code>", 1 if charged
if redis.call('ZSCORE', KEYS[2], ARGV[1]) == false then return 0 end
if ARGV[3] == '1' then
  local used = redis.call('GET', KEYS[1])
  if used and not string.match(used, '^%d+$') then return -1 end
  redis.call('INCR', KEYS[1])
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[3], ARGV[2], 1)
return 1
"""


def _usage_key(secret_id: str, day: str) -> str:
    return f"{PREFIX}usage:{secret_id}:{day}"


class RedisStore:
    """:class:`~denseface.rpc.accounts.store.AccountStore` in a Redis shared by every replica."""

    name = "redis"

    def __init__(self, url: str, *, hold: float = 60.0, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.url = url
        self._hold = hold
        self._client: aioredis.Redis = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=max(timeout, CONNECT_TIMEOUT),
            retry=Retry(NoBackoff(), 1),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
            decode_responses=True,
            health_check_interval=0,
        )
        self._admit = self._client.register_script(_ADMIT)
        self._settle = self._client.register_script(_SETTLE)
        self._started = False

    def __repr__(self) -> str:
        return f"RedisStore({_redacted(self.url)!r})"

    async def _run(self, what: str, call: Any) -> Any:
        try:
            return await call
        except ResponseError as exc:  # a script met a record of another type (WRONGTYPE …)
            raise StoreMalformed(f"Redis {what}: {exc}") from exc
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"Redis {what} at {_redacted(self.url)}: {exc!r}") from exc

    async def start(self) -> None:
        """Write the store's marker if missing (the servers do, at start; a server that could not reach
        Redis then does it at its first call that reaches it)."""
        await self._run("SET", self._client.set(MARKER, "1", nx=True))
        self._started = True

    async def ping(self) -> None:
        await self._run("PING", self._client.ping())

    async def admit(self, admission: Admission, *, day: str) -> str:
        if not self._started:
            await self.start()
        a = admission
        sid = a.secret_id
        keys = [MARKER, f"{PREFIX}used:{sid}", f"{PREFIX}holds:{sid}", f"{PREFIX}bucket:{sid}"]
        keys.append(_usage_key(sid, day))
        args = [a.request_id, a.qps or 0, -1 if a.quota is None else a.quota, self._hold, a.action]
        try:
            return str(await self._run("admit", self._admit(keys=keys, args=args)))
        except StoreMalformed:
            return MALFORMED

    async def settle(
        self, secret_id: str, request_id: str, action: str, code: str, *, day: str, charge: bool | None = None
    ) -> bool:
        keys = [f"{PREFIX}used:{secret_id}", f"{PREFIX}holds:{secret_id}", _usage_key(secret_id, day)]
        charged = code == "OK" if charge is None else charge
        args = [request_id, f"{action} {code}", "1" if charged else "0"]
        done = int(await self._run("settle", self._settle(keys=keys, args=args)))
        if done < 0:
            raise StoreMalformed(f"{PREFIX}used:{secret_id} is not an integer")
        return done == 1

    async def record(self, secret_id: str, action: str, code: str, *, day: str) -> None:
        await self._run("HINCRBY", self._client.hincrby(_usage_key(secret_id, day), f"{action} {code}", 1))

    async def remember_nonce(self, secret_id: str, nonce: str, ttl: float) -> bool:
        key = f"{PREFIX}nonce:{secret_id}:{nonce}"
        milliseconds = max(1000, int(ttl * 1000))
        return bool(await self._run("SET", self._client.set(key, "1", nx=True, px=milliseconds)))

    async def used(self, secret_ids: list[str]) -> dict[str, int]:
        if not secret_ids:
            return {}
        values = await self._run("MGET", self._client.mget([f"{PREFIX}used:{s}" for s in secret_ids]))
        result: dict[str, int] = {}
        for secret_id, value in zip(secret_ids, values, strict=True):
            if value is not None and not str(value).isdigit():
                raise StoreMalformed(f"{PREFIX}used:{secret_id} is {value!r}")
            result[secret_id] = int(value or 0)
        return result

    async def usage(self, secret_id: str | None = None, since: str | None = None) -> list[UsageRow]:
        try:
            return await self._usage(secret_id, since)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"Redis SCAN at {_redacted(self.url)}: {exc!r}") from exc

    async def _usage(self, secret_id: str | None, since: str | None) -> list[UsageRow]:
        pattern = _usage_key(secret_id, "*") if secret_id else f"{PREFIX}usage:*"
        rows: list[UsageRow] = []
        async for key in self._client.scan_iter(match=pattern, count=500):
            sid, day = str(key)[len(PREFIX) + len("usage:") :].rsplit(":", 1)
            if since is not None and day < since:
                continue
            counts = await self._client.hgetall(key)
            for field, calls in counts.items():
                action, _, code = str(field).partition(" ")
                rows.append(UsageRow(sid, day, action, code, int(calls)))
        return sorted(rows, key=lambda r: (r.secret_id, r.day, r.action, r.code))

    async def close(self) -> None:
        await self._client.aclose()


def _redacted(url: str) -> str:
    """The URL without a password (``redis://:secret@host`` → ``redis://***@host``)."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return scheme + sep + rest


__all__ = ["RedisStore"]
