"""``deploy/compose.yaml`` brought up as an operator would (podman-compose, or docker compose): two
replicas and Redis behind one published port (nginx). 40 calls of a key with quota 30, eight at a
time, give exactly 30 OK and both replicas served some; with Redis stopped the replicas say not ready
(``/readyz`` 503) while staying alive (``/healthz`` 200); replicas restarted with new addresses are
reached again through the same port."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from denseface.rpc.credentials import Credential, write_keys_file
from tests import containers
from tests.conftest import free_port, shared

COMPOSE_FILE = containers.ROOT / "deploy" / "compose.yaml"
AUTH = containers.METRICS_AUTH
QUOTA = 30
CALLS = 40


@dataclass
class Stack:
    engine: str
    compose: list[str]
    project: str
    port: int
    env: dict[str, str]

    def containers(self, service: str) -> list[str]:
        names = containers.run(self.engine, "ps", "--format", "{{.Names}}").stdout.split()
        pattern = re.compile(rf"^{re.escape(self.project)}[_-]{service}[_-]\d+$")
        return sorted(name for name in names if pattern.match(name))

    def inside(self, name: str, path: str) -> tuple[int, str]:
        """GET http://127.0.0.1:8000{path} from inside a replica: its status and body."""
        code = (
            "import urllib.request, urllib.error\n"
            "try:\n"
            f"    q = urllib.request.Request('http://127.0.0.1:8000{path}', headers={AUTH!r})\n"
            "    r = urllib.request.urlopen(q, timeout=5)\n"
            "    print(r.status); print(r.read().decode())\n"
            "except urllib.error.HTTPError as e:\n"
            "    print(e.code); print(e.read().decode())\n"
        )
        out = containers.run(self.engine, "exec", name, "python", "-c", code).stdout
        status, _, body = out.partition("\n")
        return int(status), body


def compose_command(engine: str) -> list[str]:
    if engine == "podman":
        if shutil.which("podman-compose") is None:
            pytest.skip("podman-compose is not installed (`make containers` installs it)")
        return ["podman-compose"]
    if subprocess.run(["docker", "compose", "version"], capture_output=True, check=False).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose") is not None:
        return ["docker-compose"]
    pytest.skip("no compose tool for docker")


@pytest.fixture(scope="module")
def stack(engine: str, image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("compose")
    keys = work / "keys.toml"
    write_keys_file(keys, [Credential(containers.SECRET_ID, containers.SECRET_KEY, quota=QUOTA)])
    os.chown(keys, containers.USER_ID, containers.USER_ID)  # the image's user reads it (mode 0600)
    port = free_port()
    env = {
        **os.environ,
        "DENSEFACE_IMAGE": image,
        "REDIS_IMAGE": containers.script("redis-image", timeout=300),
        "LB_IMAGE": containers.script("lb-image", timeout=300),
        "DENSEFACE_KEYS_FILE": str(keys),
        "DENSEFACE_PUBLISH": f"127.0.0.1:{port}",
        "DENSEFACE_CPUS": "1",  # one worker a replica on this 2-core machine
        "DENSEFACE_REPLICAS": "2",
        "DENSEFACE_METRICS_TOKEN": containers.METRICS_TOKEN,
        # Redis's append-only file without fsync: on this shared VM a busy disk can hold an fsync, and so
        # Redis, for seconds (calls then answer ResourceUnavailable.UnknownStatus, as they should)
        "REDIS_APPENDFSYNC": "no",
    }
    group = Stack(engine, compose_command(engine), f"dftest{port}", port, env)
    base = [*group.compose, "-p", group.project, "-f", str(COMPOSE_FILE)]
    try:
        subprocess.run([*base, "up", "-d"], env=env, capture_output=True, timeout=180, check=True)
        containers.wait_for(f"http://127.0.0.1:{port}/readyz", timeout=90)
        yield group
    finally:
        subprocess.run([*base, "down", "-v"], env=env, capture_output=True, timeout=180, check=False)
        if engine == "podman":  # podman-compose leaves the project's network
            subprocess.run(
                ["podman", "network", "rm", "-f", f"{group.project}_default"],
                capture_output=True,
                check=False,
            )


def test_two_replicas_behind_one_port_share_one_quota(stack: Stack) -> None:
    replicas = stack.containers("api")
    assert len(replicas) == 2, replicas
    photo = shared("robustness", "face_recognition", "obama-240p.jpg")

    def call(_: int) -> str:
        try:
            containers.dense_landmarks(containers.sdk(f"127.0.0.1:{stack.port}"), photo)
        except TencentCloudSDKException as exc:
            return str(exc.code)
        return "OK"

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(call, range(CALLS)))
    if "ResourceUnavailable.UnknownStatus" in codes:  # say why: the replicas' and Redis's logs
        for name in [*replicas, *stack.containers("redis")]:
            log = containers.run(stack.engine, "logs", name)
            print(name, (log.stdout + log.stderr)[-3000:])
    assert codes.count("OK") == QUOTA, codes
    assert codes.count("ResourceUnavailable.LowBalance") == CALLS - QUOTA, codes
    served = []
    for name in replicas:  # each replica's own count of the (one) key's successes
        _, page = stack.inside(name, "/metrics")
        served.append(
            sum(
                float(line.split()[-1])
                for line in page.splitlines()
                if line.startswith("denseface_key_calls_total{") and 'code="OK"' in line
            )
        )
    assert sum(served) == QUOTA, served
    assert all(count > 0 for count in served), served  # both replicas took calls: the quota was shared


def test_replicas_are_not_ready_while_redis_is_down_but_stay_alive(stack: Stack) -> None:
    replicas = stack.containers("api")
    (redis,) = stack.containers("redis")
    containers.run(stack.engine, "stop", redis, timeout=60)
    try:
        for name in replicas:
            status, body = stack.inside(name, "/readyz")
            assert status == 503, body
            assert "usage store" in body
            assert stack.inside(name, "/healthz")[0] == 200
    finally:
        containers.run(stack.engine, "start", redis, timeout=60)
    for name in replicas:  # ready again once Redis answers (it replays its append-only file first)
        deadline = time.monotonic() + 60
        while stack.inside(name, "/readyz")[0] != 200:
            assert time.monotonic() < deadline, f"{name} did not become ready again"
            time.sleep(0.5)


def test_restarted_replicas_are_reached_again_through_the_one_port(stack: Stack) -> None:
    containers.run(stack.engine, "restart", *stack.containers("api"), timeout=120)
    containers.wait_for(f"http://127.0.0.1:{stack.port}/readyz", timeout=60)  # nginx resolved them again
