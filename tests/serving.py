"""Start and stop real ``denseface serve`` processes with a given keys file and environment (the account
tests: one server on SQLite, two replicas on one Redis)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.iai.v20200303 import iai_client, models

from tests.conftest import METRICS_AUTH, METRICS_TOKEN, LiveServer, free_port


def start(
    model_dir: Path, work: Path, keys: Path, *, env: dict[str, str] | None = None, port: int | None = None
) -> LiveServer:
    """A ready ``denseface serve`` (one worker) on ``port`` (default: a free one), config dir
    ``work/config``, log ``work/server-<port>.log``."""
    port = port or free_port()
    environ = {
        **os.environ,
        "DENSEFACE_MODEL_DIR": str(model_dir),
        "DENSEFACE_CONFIG_DIR": str(work / "config"),
        "DENSEFACE_WORKERS": "1",
        "DENSEFACE_DETECTOR": "fast",
        "DENSEFACE_METRICS_TOKEN": METRICS_TOKEN,
        **(env or {}),
    }
    for name in ("DENSEFACE_SECRET_ID", "DENSEFACE_SECRET_KEY", "DENSEFACE_REDIS_URL"):
        if name not in (env or {}):
            environ.pop(name, None)
    work.mkdir(parents=True, exist_ok=True)
    log_path = work / f"server-{port}.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "denseface", "serve", "--port", str(port), "--credentials", str(keys)],
            env=environ,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = LiveServer(port, "", "", proc, log_path)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            pytest.fail(f"denseface serve exited early:\n{server.log()[-3000:]}")
        try:
            if httpx.get(f"{server.base_url}/healthz", timeout=1).json().get("status") == "ok":
                return server
        except (httpx.HTTPError, ValueError):
            pass
        if time.monotonic() > deadline:
            stop(server)
            pytest.fail(f"denseface serve did not become ready:\n{server.log()[-3000:]}")
        time.sleep(0.1)


def stop(server: LiveServer) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def client(server: LiveServer, secret_id: str, secret_key: str) -> iai_client.IaiClient:
    """The official Python SDK's client for ``server`` (no retries: every answer is seen)."""
    http = HttpProfile(protocol="http", endpoint=server.endpoint, reqTimeout=30)
    profile = ClientProfile(httpProfile=http, language="en-US")
    return iai_client.IaiClient(credential.Credential(secret_id, secret_key), "ap-guangzhou", profile)


def request(**fields: Any) -> models.AnalyzeDenseLandmarksRequest:
    req = models.AnalyzeDenseLandmarksRequest()
    req.from_json_string(json.dumps(fields))
    return req


def code_of(sdk: iai_client.IaiClient, **fields: Any) -> str:
    """``OK`` or the error code of one AnalyzeDenseLandmarks call."""
    try:
        sdk.AnalyzeDenseLandmarks(request(**fields))
    except TencentCloudSDKException as exc:
        return str(exc.code)
    return "OK"


def metrics(server: LiveServer) -> str:
    return httpx.get(f"{server.base_url}/metrics", headers=METRICS_AUTH, timeout=5).text
