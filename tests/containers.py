"""The container tests' parts: the engine (podman, else a docker whose daemon answers), the images built
once per session by ``deploy/containers.sh`` (the same script as ``make image``; layers cached), a
container that is always removed, and calls through the official Python SDK.

Skipped, with the reason, only where no engine is installed (``make containers`` installs Debian's
podman); a build that fails is a failure."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from tencentcloud.common import credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.iai.v20200303 import iai_client, models

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "deploy" / "containers.sh"
IMAGE = "localhost/denseface:latest"
SECRET_ID = "AKIDdensefaceCONTAINER0000000000000"
SECRET_KEY = "denseface-container-test-key-0123456789"
USER_ID = 10001  # the image's user
METRICS_TOKEN = "denseface-container-metrics-token"  # DENSEFACE_METRICS_TOKEN: /metrics needs it
METRICS_AUTH = {"Authorization": f"Bearer {METRICS_TOKEN}"}


def script(*args: str, timeout: float) -> str:
    """``deploy/containers.sh ARGS``: its output's last line (an image name); a failure fails the test."""
    done = subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        pytest.fail(
            f"deploy/containers.sh {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


def find_engine() -> str:
    done = subprocess.run(["bash", str(SCRIPT), "engine"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip("neither podman nor docker is installed (`make containers` installs Debian's podman)")
    return done.stdout.strip()


def run(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        pytest.fail(
            f"{' '.join(args)} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
    return done


@contextmanager
def container(engine: str, name: str, *args: str) -> Iterator[str]:
    """``ENGINE run -d --name NAME ARGS``, removed (with its anonymous volumes) however the test ends."""
    run(engine, "run", "-d", "--name", name, *args)
    try:
        yield name
    finally:
        run(engine, "rm", "-f", "-v", name, check=False)


def wait_for(url: str, *, status: int = 200, timeout: float = 60.0) -> float:
    """Seconds until ``url`` answers ``status``; fails after ``timeout``."""
    started = time.monotonic()
    last = ""
    while time.monotonic() - started < timeout:
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == status:
                return time.monotonic() - started
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.05)
    pytest.fail(f"{url} did not answer {status} within {timeout:g} s (last: {last})")


def sdk(endpoint: str, secret_id: str = SECRET_ID, secret_key: str = SECRET_KEY) -> iai_client.IaiClient:
    """The official Python SDK's client for ``endpoint`` (host:port, plain HTTP, no retries)."""
    http = HttpProfile(protocol="http", endpoint=endpoint, reqTimeout=60)
    return iai_client.IaiClient(
        credential.Credential(secret_id, secret_key), "ap-guangzhou", ClientProfile(httpProfile=http)
    )


def dense_landmarks(client: iai_client.IaiClient, photo: Path) -> dict[str, object]:
    """One AnalyzeDenseLandmarks call (Mode 1: the largest face); the response as a dict."""
    request = models.AnalyzeDenseLandmarksRequest()
    request.from_json_string(json.dumps({"Image": base64.b64encode(photo.read_bytes()).decode(), "Mode": 1}))
    answer: dict[str, object] = json.loads(client.AnalyzeDenseLandmarks(request).to_json_string())
    return answer


def points(shape: dict[str, object]) -> int:
    return sum(len(value) for value in shape.values() if isinstance(value, list))


def metrics(base_url: str) -> str:
    """The Prometheus page of the server at ``base_url`` (started with :data:`METRICS_TOKEN`)."""
    return httpx.get(f"{base_url}/metrics", headers=METRICS_AUTH, timeout=5).text


def metric(text: str, name: str) -> float:
    """The value of the unlabelled sample ``name`` in a Prometheus text page (0 if absent)."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


@pytest.fixture(scope="session")
def engine() -> str:
    return find_engine()


@pytest.fixture(scope="session")
def image(engine: str) -> str:
    """``localhost/denseface:latest``, built now (cached layers: seconds when nothing changed; a fresh
    machine also makes the local Debian base first, about a minute)."""
    started = time.monotonic()
    script("image", timeout=900)
    print(f"image build: {time.monotonic() - started:.1f} s")
    return IMAGE
