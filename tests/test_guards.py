"""The admission path's parts, one mechanism each, without a server: what is refused before the body,
the per-address and per-key guards, the fair queue, the replay memory in both stores, the JPEG scan
guard, and the SDK edges (Ruby's v1 Signature, Tencent's size message). The same attacks against a
real server are in tests/test_attacks.py; at full size in benchmarks/attack.py."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
from PIL import Image

from denseface.engine.decode import MAX_JPEG_SCANS, check_jpeg_scans, decode_bytes
from denseface.errors import ImageDecodeError
from denseface.rpc import signing
from denseface.rpc.accounts.gate import Gate
from denseface.rpc.accounts.redis_store import RedisStore
from denseface.rpc.accounts.sqlite import SqliteStore
from denseface.rpc.credentials import Credential
from denseface.rpc.envelope import message_for
from denseface.rpc.protocol import MAX_TC3_BODY_BYTES, ApiError, complete, preflight
from denseface.rpc.replay import REPLAY_CODE, check_replay
from denseface.server.fair_queue import FairQueue, Shares
from denseface.server.guards import IP_LIMITED, ClientGuard, KeySlots, read_body
from tests.redis_server import RedisServer
from tests.test_accounts import Clock
from tests.test_protocol import NOW, SECRET_ID, STORE, parse, tc3, v1

T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


# --------------------------------------------------------------------------------- before the body
def test_preflight_refuses_without_the_body_and_complete_verifies_with_it() -> None:
    method, query, headers, body = tc3()
    pre = preflight(method, query, headers, content_length=len(body), now=NOW, credentials=STORE)
    assert pre.credential is not None
    assert pre.credential.secret_id == SECRET_ID
    assert pre.needs_body
    assert pre.body_limit == MAX_TC3_BODY_BYTES
    digest = signing.sha256_hex(body)  # what the server computes while it reads
    assert complete(pre, body, now=NOW, credentials=STORE, body_sha256=digest).secret_id == SECRET_ID
    with pytest.raises(ApiError) as info:
        complete(pre, body + b" ", now=NOW, credentials=STORE)
    assert info.value.code == "AuthFailure.SignatureFailure"

    cases = [
        ({"Content-Length": MAX_TC3_BODY_BYTES + 1}, "RequestSizeLimitExceeded"),
        ({"drop": "authorization"}, "AuthFailure.InvalidAuthorization"),
        ({"secret_id": "AKIDnobody"}, "AuthFailure.SecretIdNotFound"),
        ({"secret_id": "AKIDdisabled"}, "AuthFailure.SecretIdNotFound"),
        ({"timestamp": NOW - 301}, "AuthFailure.SignatureExpire"),
        ({"timestamp": NOW + 301}, "AuthFailure.SignatureExpire"),  # the future: the same window
    ]
    for change, code in cases:
        length = int(change.pop("Content-Length", len(body)))
        drop = change.pop("drop", None)
        method, query, headers, body = tc3(**change)
        headers = {k: v for k, v in headers.items() if k.lower() != drop}
        with pytest.raises(ApiError) as info:  # the body is never needed to refuse these
            preflight(method, query, headers, content_length=length, now=NOW, credentials=STORE)
        assert info.value.code == code, change


def test_a_v1_get_is_checked_up_to_its_key_before_anything_is_read() -> None:
    method, query, headers, _ = v1(SecretId="AKIDnobody")
    with pytest.raises(ApiError) as info:
        preflight(method, query, headers, content_length=None, now=NOW, credentials=STORE)
    assert info.value.code == "AuthFailure.SecretIdNotFound"
    method, query, headers, _ = v1(Timestamp=str(NOW + 400))
    with pytest.raises(ApiError) as info:
        preflight(method, query, headers, content_length=None, now=NOW, credentials=STORE)
    assert info.value.code == "AuthFailure.SignatureExpire"


@pytest.mark.parametrize("padding", ["\n", "\r\n", " "])
def test_rubys_v1_signature_with_a_trailing_newline_is_accepted(padding: str) -> None:
    method, query, headers, body = v1()
    signed = dict(pair.split("=", 1) for pair in query.split("&"))
    from urllib.parse import quote, unquote

    signature = unquote(signed["Signature"])
    padded = query.replace(f"Signature={signed['Signature']}", f"Signature={quote(signature + padding)}")
    assert padded != query
    call = parse((method, padded, headers, body))
    assert call.secret_id == SECRET_ID
    assert call.nonce == 9223372036854775807
    wrong = query.replace(f"Signature={signed['Signature']}", f"Signature={quote('x' + signature)}")
    with pytest.raises(ApiError, match="signature"):
        parse((method, wrong, headers, body))


def test_the_v1_size_message_is_tencents_without_a_suffix() -> None:
    method, _, headers, _ = v1(method="POST")
    with pytest.raises(ApiError) as info:
        preflight(method, "", headers, content_length=2 * 1024 * 1024, now=NOW, credentials=STORE)
    assert info.value.code == "RequestSizeLimitExceeded"
    assert info.value.localized("en-US") == message_for("RequestSizeLimitExceeded", "en-US")
    assert "(" not in info.value.localized("zh-CN")


# ------------------------------------------------------------------------------------ body reading
def test_read_body_is_bounded_and_hashed_as_it_arrives() -> None:
    chunks = [b"a" * 1000, b"b" * 1000, b""]

    def receiver(parts: list[bytes]) -> Any:
        messages = iter([{"type": "http.request", "body": p, "more_body": i < len(parts) - 1}
                         for i, p in enumerate(parts)])  # fmt: skip

        async def receive() -> dict[str, Any]:
            return next(messages)

        return receive

    body, digest = run(read_body(receiver(chunks), 2000))
    assert body == b"a" * 1000 + b"b" * 1000
    assert digest == signing.sha256_hex(body)
    with pytest.raises(ApiError, match="too large"):
        run(read_body(receiver(chunks), 1999))


# ------------------------------------------------------------------------------------ client guard
def test_an_address_out_of_refusals_is_refused_first_and_others_are_not() -> None:
    clock = Clock()
    guard = ClientGuard(rate=2.0, burst=5, clock=clock)
    for _ in range(5):
        guard.check("10.0.0.2")
        guard.refused("10.0.0.2")
    with pytest.raises(ApiError) as info:
        guard.check("10.0.0.2")
    assert info.value.code == IP_LIMITED
    guard.check("10.0.0.3")  # another address is not affected
    clock.now += 0.5  # one refusal earned back
    guard.check("10.0.0.2")
    assert ClientGuard(rate=0).check("x") is None  # 0: no limit


def test_the_pre_auth_body_budget_is_shared_and_capped_per_address() -> None:
    async def scenario() -> list[str]:
        guard = ClientGuard(budget=300, per_client=200, wait=0.2)
        events: list[str] = []
        held = await guard.hold("a", 150)
        with pytest.raises(ApiError, match="busy"):  # this address's share is spent: waits, then refused
            await guard.hold("a", 100)
        other = await guard.hold("b", 150)  # another address still fits
        assert guard.held == 300

        async def waiter() -> None:
            size = await guard.hold("c", 100)
            events.append(f"c got {size}")

        task = asyncio.create_task(waiter())
        await asyncio.sleep(0.05)
        events.append("released")
        await guard.release("a", held)
        await task
        await guard.release("b", other)
        return events

    assert run(scenario()) == ["released", "c got 100"]


# --------------------------------------------------------------------------------------- key slots
def test_a_key_has_its_own_concurrency_and_strikes_hold_it_to_one() -> None:
    clock = Clock()
    slots = KeySlots(2, strikes=2, strike_window=60, clock=clock)
    slots.acquire("A", None)
    slots.check("A", None)  # a free slot: checked (before the body is read), nothing taken
    slots.acquire("A", None)
    with pytest.raises(ApiError):
        slots.check("A", None)
    with pytest.raises(ApiError) as info:
        slots.acquire("A", None)
    assert info.value.code == "RequestLimitExceeded"
    slots.acquire("B", None)  # another key is not affected
    slots.acquire("A2", 3)  # a key's own setting wins
    slots.acquire("A2", 3)
    slots.acquire("A2", 3)
    slots.release("A")
    slots.release("A")
    slots.strike("A")
    slots.strike("A")
    assert slots.limit("A", None) == 1  # repeated deadline hits: one call at a time
    clock.now += 61
    assert slots.limit("A", None) == 2  # they age out


# --------------------------------------------------------------------------------------- fair queue
def test_a_flooding_key_delays_another_by_at_most_the_running_job() -> None:
    queue: FairQueue[str] = FairQueue()
    for i in range(12):
        queue.append("flood", f"f{i}")
    queue.append("other", "o0")
    first = queue.popleft({})
    assert first == "f0"  # the oldest, nobody is running
    assert queue.popleft({"flood": 1}) == "o0"  # next: the key with no job running
    assert [queue.popleft({"flood": 1}) for _ in range(3)] == ["f1", "f2", "f3"]
    assert queue.remove("flood", "f5")
    assert not queue.remove("flood", "f5")
    assert len(queue) == 7


def test_a_key_alone_may_hold_every_worker_and_shares_them_while_another_is_active() -> None:
    clock = Clock()
    shares = Shares(window=2.0, clock=clock)
    queue: FairQueue[str] = FairQueue()
    for i in range(4):
        queue.append("flood", f"f{i}")
    shares.seen("flood")
    assert shares.caps(2, queue.keys(), {}) == {"flood": 2}  # alone: both workers
    assert queue.take({"flood": 1}, shares.caps(2, queue.keys(), {"flood": 1})) == "f0"
    shares.seen("other")  # another key called a moment ago (its call is done; it may call again)
    caps = shares.caps(2, queue.keys(), {"flood": 1})
    assert caps == {"flood": 1, "other": 1}
    assert queue.take({"flood": 1}, caps) is None  # the second worker is kept for the other key
    assert shares.next_change() == 2.0
    queue.append("other", "o0")
    assert queue.take({"flood": 1}, shares.caps(2, queue.keys(), {"flood": 1})) == "o0"
    clock.now += 2.0  # the other key has been quiet for the window: the flood may use both again
    assert shares.caps(2, queue.keys(), {"flood": 1}) == {"flood": 2}
    assert shares.caps(8, ["a", "b", "c"], {}) == {"a": 6, "b": 6, "c": 6}  # all but one per other key


# --------------------------------------------------------------------------------------------- replay
def _replay(store: Any) -> list[str]:
    async def scenario() -> list[str]:
        await store.start()
        outcomes = []
        for request in (v1(), v1(), v1(Nonce="12345"), tc3(), tc3()):
            call = parse(request)
            try:
                await check_replay(store, call, now=NOW)
                outcomes.append("OK")
            except ApiError as error:
                outcomes.append(f"{error.code}: {error.localized('en-US')}")
        await store.close()
        return outcomes

    return run(scenario())


REPLAYED = (
    f"{REPLAY_CODE}: {message_for('AuthFailure.SignatureExpire.Replay', 'zh-CN')}"  # the call's language
)


def test_a_replayed_v1_request_is_refused_sqlite(tmp_path: Path) -> None:
    # the same signed request twice: the second is refused; a new Nonce passes; TC3 has no nonce
    assert _replay(SqliteStore(tmp_path / "u.sqlite3")) == ["OK", REPLAYED, "OK", "OK", "OK"]
    assert "Nonce" in REPLAYED  # names what to change


def test_a_replayed_v1_request_is_refused_redis(redis_server: RedisServer) -> None:
    assert _replay(RedisStore(redis_server.url)) == ["OK", REPLAYED, "OK", "OK", "OK"]
    # another replica (another client of the same Redis) refuses it too
    assert _replay(RedisStore(redis_server.url))[:2] == [REPLAYED, REPLAYED]


def test_a_nonce_is_forgotten_once_its_timestamp_leaves_the_window(tmp_path: Path) -> None:
    clock = Clock()
    store = SqliteStore(tmp_path / "u.sqlite3", clock=clock)
    assert run(store.remember_nonce("AKIDa", "1:100", 10.0))
    assert not run(store.remember_nonce("AKIDa", "1:100", 10.0))
    assert run(store.remember_nonce("AKIDb", "1:100", 10.0))  # per key
    clock.now += 11
    assert run(store.remember_nonce("AKIDa", "1:100", 10.0))


def test_a_deadline_hit_can_be_charged_to_the_key(tmp_path: Path) -> None:
    async def scenario() -> dict[str, int]:
        gate = Gate(SqliteStore(tmp_path / "u.sqlite3"), default_qps=None)
        key = Credential("AKIDa", "k")
        ticket = await gate.admit(key, "AnalyzeDenseLandmarks", "r1")
        await gate.settle(ticket, "FailedOperation.RequestTimeout", charge=True)
        ticket = await gate.admit(key, "AnalyzeDenseLandmarks", "r2")
        await gate.settle(ticket, "FailedOperation.RequestTimeout")  # not charged by default
        return await gate.store.used(["AKIDa"])

    assert run(scenario()) == {"AKIDa": 1}


# ------------------------------------------------------------------------------------- scan bombs
def scan_bomb(size: tuple[int, int], repeats: int) -> bytes:
    """A progressive JPEG whose smallest scan (a dozen bytes: every block an end-of-band) is repeated."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (128, 128, 128)).save(buffer, "JPEG", progressive=True, quality=80)
    data = buffer.getvalue()
    scans = []
    start = data.find(b"\xff\xda")
    while start != -1:
        end = data.find(b"\xff\xda", start + 2)
        scans.append((start, data.rfind(b"\xff\xd9") if end == -1 else end))
        start = end
    first, last = min(scans, key=lambda span: span[1] - span[0])
    eoi = data.rfind(b"\xff\xd9")
    return data[:eoi] + data[first:last] * repeats + data[eoi:]


def test_a_scan_bomb_is_refused_before_decoding() -> None:
    bomb = scan_bomb((1000, 1000), 20_000)
    assert len(bomb) < 400_000
    started = time.perf_counter()
    with pytest.raises(ImageDecodeError, match="scans"):
        decode_bytes(bomb)
    assert time.perf_counter() - started < 0.5  # refused from the header and a byte count
    # a progressive photo with a normal scan script decodes
    photo = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(photo, "JPEG", progressive=True)
    assert check_jpeg_scans(photo.getvalue(), 400 * 300) < 20
    assert decode_bytes(photo.getvalue()).width == 400
    with pytest.raises(ImageDecodeError, match="decode budget"):  # few scans, but of a huge image
        check_jpeg_scans(b"\xff\xda" * MAX_JPEG_SCANS, 60_000_000)
