"""Shared fixtures: the real models, shared photos, and a real ``denseface serve`` on a free port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from hypothesis import settings as hypothesis_settings

from denseface.api import Analyzer
from denseface.engine import models

# Hypothesis profiles. "ci" (chosen when CI=true, as in .ci/run's environment): every run draws the same
# examples, keeps no example database and prints a reproduction blob for a failure. "dev" (otherwise):
# new random examples every run. Neither has a deadline: these tests do real HTTP and model work on a
# shared 2-core machine. Tests that set max_examples themselves keep their number under both.
# HYPOTHESIS_PROFILE=ci|dev picks one explicitly.
hypothesis_settings.register_profile(
    "ci", derandomize=True, print_blob=True, deadline=None, max_examples=100, database=None
)
hypothesis_settings.register_profile("dev", deadline=None)
hypothesis_settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI", "").lower() == "true" else "dev")
)

pytest_plugins = [
    "tests.redis_server",  # the redis_server fixture (a real Debian redis-server)
    "tests.containers",  # the engine and image fixtures (podman or docker; the image built once)
]

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
LANDMARKS = SHARED / "landmarks"
ROBUSTNESS = SHARED / "robustness"

# The layout the issue fixes, written out independently of denseface's own table.
REGION_COUNTS = {
    "LeftEye": 64,
    "RightEye": 64,
    "LeftEyeBrow": 64,
    "RightEyeBrow": 64,
    "MouthOutside": 64,
    "MouthInside": 64,
    "Nose": 64,
    "LeftPupil": 32,
    "RightPupil": 32,
    "CentralAxis": 32,
    "Chin": 160,
    "LeftEyeBags": 32,
    "RightEyeBags": 32,
    "Forehead": 120,
}

# AnalyzeFace's FaceShape, written out from the issue (tests/test_analyze_face.py checks it against
# the SDK's model)
SHAPE90 = {
    "FaceProfile": 21,
    "LeftEye": 8,
    "RightEye": 8,
    "LeftEyeBrow": 8,
    "RightEyeBrow": 8,
    "Mouth": 22,
    "Nose": 13,
    "LeftPupil": 1,
    "RightPupil": 1,
}
ANALYZE_FACE_FIELDS = {"ImageWidth", "ImageHeight", "FaceShapeSet", "FaceModelVersion", "RequestId"}

# Test keys, written to a temporary credentials file (not secrets).
SECRET_ID = "AKIDdensefaceTEST0000000000000000000"
SECRET_KEY = "denseface-test-secret-key-0123456789abcd"
OTHER_ID = "AKIDdensefaceTEST1111111111111111111"
OTHER_KEY = "denseface-test-secret-key-other-987654321"


def shared(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"shared dataset file {path} is missing (CI has ../shared beside the repo)")
    return path


@pytest.fixture(scope="session")
def model_dir() -> Path:
    try:
        paths = models.locate()
    except Exception as exc:  # a clear message instead of a cascade of errors
        pytest.exit(f"model weights unavailable: {exc}", returncode=3)
    return next(iter(paths.values())).parent


@pytest.fixture(scope="session")
def analyzer(model_dir: Path) -> Analyzer:
    return Analyzer(model_dir)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: the bearer token of /metrics and the detailed /healthz on the test servers
METRICS_TOKEN = "test-metrics-token-0123456789"
METRICS_AUTH = {"Authorization": f"Bearer {METRICS_TOKEN}"}


def write_keys(path: Path, text: str) -> Path:
    """A keys file as the server requires it: readable by its owner only (0600)."""
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


@dataclass(frozen=True)
class LiveServer:
    port: int
    secret_id: str
    secret_key: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def live_server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """``denseface serve`` in a subprocess, two keys (the second limited to 2 QPS), 127.0.0.1 allowed
    for Url downloads."""
    work = tmp_path_factory.mktemp("server")
    creds = work / "credentials.toml"
    write_keys(
        creds,
        f'[[keys]]\nsecret_id = "{SECRET_ID}"\nsecret_key = "{SECRET_KEY}"\nqps = 1000\n'
        f'[[keys]]\nsecret_id = "{OTHER_ID}"\nsecret_key = "{OTHER_KEY}"\nqps = 2\n',
    )
    port = free_port()
    env = {
        **os.environ,
        "DENSEFACE_MODEL_DIR": str(model_dir),
        "DENSEFACE_CONFIG_DIR": str(work / "config"),
        "DENSEFACE_URL_ALLOW": "127.0.0.1/32",
        "DENSEFACE_WORKERS": "2",
        "DENSEFACE_METRICS_TOKEN": METRICS_TOKEN,
        # the property tests send thousands of malformed requests from this one address on purpose
        "DENSEFACE_CLIENT_RATE": "0",
    }
    env.pop("DENSEFACE_SECRET_ID", None)
    env.pop("DENSEFACE_SECRET_KEY", None)
    log_path = work / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "denseface", "serve", "--port", str(port), "--credentials", str(creds)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = LiveServer(port, SECRET_ID, SECRET_KEY, proc, log_path)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            pytest.fail(f"denseface serve exited early:\n{server.log()}")
        try:
            if httpx.get(f"{server.base_url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"denseface serve did not become ready:\n{server.log()}")
        time.sleep(0.2)
    yield server
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
