"""The shared store against a real ``redis-server``: two store objects (two replicas) racing for one
quota, the token bucket on Redis's clock, holds, the marker, malformed records, Redis down or hung
(bounded, then recovered) and idempotent settling."""

from __future__ import annotations

import asyncio
import time

import pytest

from denseface.rpc.accounts import StoreUnavailable
from denseface.rpc.accounts.redis_store import RedisStore
from denseface.rpc.accounts.store import Admission
from tests.redis_server import RedisServer

DAY = "2026-12-01"
ACTION = "AnalyzeDenseLandmarks"


def admission(
    request_id: str, *, qps: float | None = None, quota: int | None = None, key: str = "AKIDa"
) -> Admission:
    return Admission(key, request_id, ACTION, qps, quota)


def test_two_stores_racing_hold_the_quota_exactly(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        a, b = RedisStore(redis_server.url), RedisStore(redis_server.url)
        await a.start()
        calls = [s.admit(admission(f"r{i}", quota=30), day=DAY) for i, s in enumerate([a, b] * 20)]
        codes = await asyncio.gather(*calls)
        assert codes.count("OK") == 30
        assert codes.count("ResourceUnavailable.LowBalance") == 10
        admitted = [f"r{i}" for i, code in enumerate(codes) if code == "OK"]
        # five fail (their units come back), the rest succeed; a repeated settle counts nothing
        for i, request_id in enumerate(admitted):
            outcome = "FailedOperation.ImageDecodeFailed" if i < 5 else "OK"
            assert await (a if i % 2 else b).settle("AKIDa", request_id, ACTION, outcome, day=DAY)
            assert not await a.settle("AKIDa", request_id, ACTION, outcome, day=DAY)
        assert await a.used(["AKIDa"]) == {"AKIDa": 25}
        more = await asyncio.gather(*(b.admit(admission(f"s{i}", quota=30), day=DAY) for i in range(8)))
        assert more.count("OK") == 5
        rows = {r.code: r.calls for r in await b.usage("AKIDa", since=DAY)}
        assert rows == {
            "OK": 25,
            "FailedOperation.ImageDecodeFailed": 5,
            "ResourceUnavailable.LowBalance": 13,
        }
        await a.close()
        await b.close()

    asyncio.run(scenario())


def test_bucket_holds_marker_and_malformed_records(redis_server: RedisServer) -> None:
    raw = redis_server.client()

    async def scenario() -> None:
        store = RedisStore(redis_server.url, hold=0.3)
        await store.start()
        codes = [await store.admit(admission(f"q{i}", qps=4), day=DAY) for i in range(6)]
        assert codes == ["OK"] * 4 + ["RequestLimitExceeded"] * 2  # capacity 4, refilled 4/s
        assert await store.admit(admission("q0", qps=4), day=DAY) == "OK"  # a retried admit: already held
        assert await store.admit(admission("h0", quota=1, key="AKIDh"), day=DAY) == "OK"  # never settled
        refused = await store.admit(admission("h1", quota=1, key="AKIDh"), day=DAY)
        assert refused == "ResourceUnavailable.LowBalance"
        await asyncio.sleep(0.35)  # the hold expired (Redis time)
        assert await store.admit(admission("h2", quota=1, key="AKIDh"), day=DAY) == "OK"
        raw.set("df:used:AKIDa", "x")
        assert await store.admit(admission("m0"), day=DAY) == "ResourcesSoldOut.ChargeStatusException"
        raw.delete("df:used:AKIDa")
        raw.hset("df:used:AKIDa", "a", "1")  # another type altogether
        assert await store.admit(admission("m1"), day=DAY) == "ResourcesSoldOut.ChargeStatusException"
        raw.delete("df:used:AKIDa")
        assert await store.admit(admission("m2"), day=DAY) == "OK"
        raw.flushall()
        assert await store.admit(admission("f0"), day=DAY) == "ResourceUnavailable.NotExist"
        await store.close()

    asyncio.run(scenario())


def test_redis_down_or_hung_is_bounded_and_recovers(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        store = RedisStore(redis_server.url)
        await store.start()
        assert await store.admit(admission("r0", quota=5), day=DAY) == "OK"
        for fault, heal in [
            (redis_server.pause, redis_server.resume),
            (redis_server.stop, redis_server.start),
        ]:
            fault()
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                await store.admit(admission("r1", quota=5), day=DAY)
            assert time.monotonic() - started < 2.5  # 0.5 s timeouts, one retry
            heal()
            assert await store.admit(admission("r1", quota=5), day=DAY) == "OK"  # back, and the data kept
            assert await store.settle("AKIDa", "r1", ACTION, "OK", day=DAY)
            assert await store.settle("AKIDa", "r0", ACTION, "OK", day=DAY) is (fault == redis_server.pause)
        assert await store.used(["AKIDa"]) == {"AKIDa": 3}
        await store.close()

    asyncio.run(scenario())


def test_a_server_started_while_redis_was_down_sets_the_store_up_when_it_answers(
    redis_server: RedisServer,
) -> None:
    async def scenario() -> None:
        redis_server.stop()
        store = RedisStore(redis_server.url)
        with pytest.raises(StoreUnavailable):
            await store.start()
        with pytest.raises(StoreUnavailable):
            await store.admit(admission("r0"), day=DAY)
        redis_server.start()
        assert await store.admit(admission("r0"), day=DAY) == "OK"
        await store.close()

    asyncio.run(scenario())
