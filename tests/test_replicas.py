"""Two real ``denseface serve`` replicas sharing one real ``redis-server`` (``DENSEFACE_REDIS_URL``),
called with the official Python SDK: a quota and a rate limit held across both replicas while calls
race, usage surviving restarts of the replicas, and Redis down or hung (a bounded
``ResourceUnavailable.UnknownStatus``, then recovery, nothing counted twice)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from denseface.rpc.credentials import Credential, write_keys_file
from denseface.server.metrics import key_label
from tests import serving
from tests.conftest import LiveServer, shared
from tests.redis_server import RedisServer

KEY = "denseface-test-secret-key-replicas-012345678"
QUOTA_ID = "AKIDdensefaceREPLICAQUOTA00000000000"
RATE_ID = "AKIDdensefaceREPLICARATE000000000000"
DOWN_ID = "AKIDdensefaceREPLICADOWN000000000000"
PASSES = "InvalidParameterValue.ImageEmpty"  # a call without an image: through the gate, no inference


class Replicas:
    def __init__(self, model_dir: Path, work: Path, redis_server: RedisServer) -> None:
        self.model_dir, self.work, self.redis = model_dir, work, redis_server
        self.keys = work / "keys.toml"
        write_keys_file(
            self.keys,
            [Credential(QUOTA_ID, KEY, quota=30), Credential(RATE_ID, KEY, qps=4), Credential(DOWN_ID, KEY)],
        )
        self.servers: list[LiveServer] = []

    def start(self) -> None:
        env = {"DENSEFACE_REDIS_URL": self.redis.url}
        # separate config dirs: nothing shared but Redis
        self.servers = [
            serving.start(self.model_dir, self.work / f"r{i}", self.keys, env=env) for i in (0, 1)
        ]

    def stop(self) -> None:
        for server in self.servers:
            serving.stop(server)

    def code(self, i: int, secret_id: str, **fields: str) -> str:
        return serving.code_of(serving.client(self.servers[i % 2], secret_id, KEY), **fields)

    def usage(self, secret_id: str) -> dict[str, int]:
        env = {**os.environ, "DENSEFACE_REDIS_URL": self.redis.url, "DENSEFACE_CONFIG_DIR": str(self.work)}
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "denseface",
                "keys",
                "--credentials",
                str(self.keys),
                "usage",
                "--json",
                secret_id,
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        counts: dict[str, int] = {}
        for row in json.loads(done.stdout):
            counts[row["code"]] = counts.get(row["code"], 0) + row["calls"]
        return counts


@pytest.fixture(scope="module")
def replicas(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    redis_server = RedisServer(tmp_path_factory.mktemp("redis"))
    redis_server.start()
    group = Replicas(model_dir, tmp_path_factory.mktemp("replicas"), redis_server)
    try:
        group.start()
        yield group
    finally:
        group.stop()
        redis_server.stop()


def test_quota_30_of_40_racing_calls_across_replicas_and_usage_after_restarts(replicas: Replicas) -> None:
    photo = base64.b64encode(shared("robustness", "face_recognition", "obama-240p.jpg").read_bytes()).decode()
    with ThreadPoolExecutor(8) as pool:  # alternating replicas, 8 calls in flight at once
        codes = list(pool.map(lambda i: replicas.code(i, QUOTA_ID, Image=photo), range(40)))
    assert codes.count("OK") == 30, codes
    assert codes.count("ResourceUnavailable.LowBalance") == 10, codes
    for server in replicas.servers:  # each replica's own counters in /metrics
        assert f'key="{key_label(QUOTA_ID)}"' in serving.metrics(server)

    replicas.stop()
    replicas.start()
    assert [replicas.code(i, QUOTA_ID, Image=photo) for i in (0, 1)] == ["ResourceUnavailable.LowBalance"] * 2
    assert replicas.usage(QUOTA_ID) == {"OK": 30, "ResourceUnavailable.LowBalance": 12}


def test_qps_4_burst_across_both_replicas_is_held_to_4_per_second(replicas: Replicas) -> None:
    clients = [serving.client(replicas.servers[i % 2], RATE_ID, KEY) for i in range(16)]
    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:  # 16 calls at once, 8 on each replica
        codes = list(pool.map(serving.code_of, clients))
    elapsed = time.monotonic() - started
    admitted = codes.count(PASSES)
    assert set(codes) == {PASSES, "RequestLimitExceeded"}, codes
    # one bucket for both replicas: 4 at once, then 4 a second (two buckets would admit ≥ 8 at once)
    assert 4 <= admitted <= 4 + int(4 * elapsed) + 1, (admitted, elapsed)
    time.sleep(1.0)  # refilled by 4: again exactly about 4 get through
    later = [serving.code_of(c) for c in clients[:8]]
    assert 4 <= later.count(PASSES) <= 6, later
    usage = replicas.usage(RATE_ID)
    assert usage[PASSES] == admitted + later.count(PASSES)
    assert usage["RequestLimitExceeded"] == 24 - usage[PASSES]


def test_redis_down_or_hung_answers_unknown_status_in_bounded_time_then_recovers(replicas: Replicas) -> None:
    answered_ok = 0
    assert [replicas.code(i, DOWN_ID) for i in (0, 1)] == [PASSES] * 2
    answered_ok += 2
    for fault, heal in [
        (replicas.redis.pause, replicas.redis.resume),
        (replicas.redis.stop, replicas.redis.start),
    ]:
        fault()
        for i in (0, 1):
            started = time.monotonic()
            assert replicas.code(i, DOWN_ID) == "ResourceUnavailable.UnknownStatus"
            assert time.monotonic() - started < 3.0  # never a hang: socket timeouts
        for server in replicas.servers:  # not ready (take no calls), yet alive (do not restart me)
            assert httpx.get(f"{server.base_url}/readyz", timeout=5).status_code == 503
            assert httpx.get(f"{server.base_url}/healthz", timeout=5).status_code == 200
        heal()
        assert [replicas.code(i, DOWN_ID) for i in (0, 1)] == [PASSES] * 2  # no restart needed
        for server in replicas.servers:
            assert httpx.get(f"{server.base_url}/readyz", timeout=5).json() == {"status": "ready"}
        answered_ok += 2
    for server in replicas.servers:
        assert server.process.poll() is None
        assert "usage store unavailable" in server.log()
    # every call the clients saw pass is counted once; the refused ones could not be counted anywhere
    assert replicas.usage(DOWN_ID) == {PASSES: answered_ok}
