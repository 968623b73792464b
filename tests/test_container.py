"""The image (``make image``), run as an operator would: it starts and answers ``/healthz``; a call signed
by the official Python SDK returns 888 points; it runs as its own non-root user on a read-only root
with its state on a volume, takes its worker count from ``--cpus``, writes JSON log lines without the
SecretKey, and on SIGTERM lets the calls in flight finish before it exits. A keys file its user
cannot read is one clear line and exit 1."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import httpx
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from denseface.rpc.credentials import Credential, write_keys_file
from tests import containers
from tests.conftest import REGION_COUNTS, free_port, shared

IN_FLIGHT = 4  # calls sent at once to the one worker when SIGTERM arrives


def test_container_serves_as_non_root_and_drains_on_sigterm(engine: str, image: str) -> None:
    port = free_port()
    name = f"denseface-smoke-{port}"
    volume = f"denseface-smoke-state-{port}"
    started = time.monotonic()
    with containers.container(
        engine,
        name,
        *("-p", f"127.0.0.1:{port}:8000", "--cpus", "1", "--read-only", "--tmpfs", "/tmp"),
        *("-v", f"{volume}:/var/lib/denseface"),
        *(
            "-e",
            f"DENSEFACE_SECRET_ID={containers.SECRET_ID}",
            "-e",
            f"DENSEFACE_SECRET_KEY={containers.SECRET_KEY}",
        ),
        *("-e", "DENSEFACE_LOG_FORMAT=json", "-e", f"DENSEFACE_METRICS_TOKEN={containers.METRICS_TOKEN}"),
        image,
    ):
        base = f"http://127.0.0.1:{port}"
        containers.wait_for(f"{base}/healthz", timeout=60)
        print(f"/healthz 200 after {time.monotonic() - started:.2f} s from `{engine} run`")
        workers = containers.metric(containers.metrics(base), "denseface_workers")
        assert workers == 1  # --cpus 1 on a bigger host: one worker, not one per host core
        assert httpx.get(f"{base}/readyz", timeout=5).json() == {"status": "ready"}
        assert containers.run(engine, "exec", name, "id", "-u").stdout.strip() == str(containers.USER_ID)

        client = containers.sdk(f"127.0.0.1:{port}")
        answer = containers.dense_landmarks(
            client, shared("robustness", "face_recognition", "obama-240p.jpg")
        )
        shapes = answer["DenseFaceShapeSet"]
        assert isinstance(shapes, list)
        assert len(shapes) == 1
        assert containers.points(shapes[0]) == sum(REGION_COUNTS.values()) == 888

        # SIGTERM while calls are in flight on the one worker: every one of them is answered in full
        photo = shared("robustness", "face_recognition", "obama-1080p.jpg")
        results: list[object] = []

        def call() -> None:
            try:
                results.append(containers.dense_landmarks(containers.sdk(f"127.0.0.1:{port}"), photo))
            except (TencentCloudSDKException, OSError) as exc:
                results.append(exc)

        threads = [threading.Thread(target=call) for _ in range(IN_FLIGHT)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        in_flight = 0.0
        while time.monotonic() < deadline and in_flight < 2:
            in_flight = containers.metric(containers.metrics(base), "denseface_in_flight")
        assert in_flight >= 2, "the calls never were in flight together"
        containers.run(engine, "kill", "--signal", "TERM", name)
        for thread in threads:
            thread.join(timeout=60)
        assert len(results) == IN_FLIGHT
        for result in results:
            assert isinstance(result, dict), result
            assert containers.points(result["DenseFaceShapeSet"][0]) == 888  # type: ignore[index]
        exit_code = containers.run(engine, "wait", name, timeout=60).stdout.strip()
        assert exit_code == "0"

        log = containers.run(engine, "logs", name)
        lines = (log.stdout + log.stderr).splitlines()
        ours = [json.loads(line) for line in lines if line.startswith("{")]
        assert {"ready: 1 inference worker process(es)", "stopped"} <= {line["message"] for line in ours}
        assert containers.SECRET_KEY not in log.stdout + log.stderr
        assert not [line for line in lines if "Traceback" in line]

        # the usage store was written on the volume (the root filesystem is read-only)
        listing = containers.run(
            engine, "run", "--rm", "-v", f"{volume}:/state", "--entrypoint", "ls", image, "/state"
        )
        assert "usage.sqlite3" in listing.stdout.split()
    containers.run(engine, "volume", "rm", "-f", volume, check=False)


def test_the_weights_are_in_the_image_and_verified_offline(engine: str, image: str) -> None:
    done = containers.run(engine, "run", "--rm", "--network", "none", image, "models", "verify")
    assert len(done.stdout.splitlines()) == 5  # every pinned file, checked by sha256, no network
    assert all(line.split("\t")[1].startswith("/opt/models/") for line in done.stdout.splitlines())


def test_a_keys_file_the_container_user_cannot_read_is_one_clear_line(
    engine: str, image: str, tmp_path: Path
) -> None:
    keys = tmp_path / "keys" / "keys.toml"
    keys.parent.mkdir()
    write_keys_file(keys, [Credential(containers.SECRET_ID, containers.SECRET_KEY)])  # 0600, this (root) user
    name = f"denseface-keys-{free_port()}"
    with containers.container(
        engine,
        name,
        *("-v", f"{keys.parent}:/run/denseface:ro", "-e", "DENSEFACE_CREDENTIALS=/run/denseface/keys.toml"),
        image,
    ):
        assert containers.run(engine, "wait", name, timeout=60).stdout.strip() == "1"
        log = containers.run(engine, "logs", name)
        text = log.stdout + log.stderr
        assert "cannot read credentials file /run/denseface/keys.toml" in text
        assert "Traceback" not in text
    assert os.stat(keys).st_mode & 0o777 == 0o600
