"""The ASGI app in-process (real models, real worker pool): deadline, routing, settings from the
environment. The end-to-end client tests against a live server are in test_sdk.py / test_tccli.py."""

from __future__ import annotations

import base64
import functools
import json
import logging
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from denseface.cli import build_parser
from denseface.errors import InferenceError
from denseface.rpc.credentials import Credential, CredentialStore
from denseface.rpc.fetch import UrlFetcher
from denseface.rpc.service import ActionService
from denseface.rpc.signing import sign_tc3_request
from denseface.server.app import ApiApp, create_app
from denseface.server.run import build_app
from denseface.server.settings import Settings
from denseface.server.worker_process import WorkerConfig
from denseface.server.workers import ProcessPool
from tests.conftest import METRICS_AUTH, METRICS_TOKEN, SECRET_ID, SECRET_KEY, shared, write_keys
from tests.faults import failing_analyzer

HOST = "testserver"


def signed_post(client: TestClient, params: dict[str, object]) -> dict[str, object]:
    body = json.dumps(params).encode()
    headers = sign_tc3_request(
        SECRET_ID,
        SECRET_KEY,
        host=HOST,
        action="AnalyzeDenseLandmarks",
        version="2020-03-03",
        timestamp=int(time.time()),
        payload=body,
        region="ap-guangzhou",
        language="en-US",
    )
    response = client.post("/", content=body, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    result: dict[str, object] = response.json()["Response"]
    return result


def make_client(model_dir: Path, tmp_path: Path, **settings: object) -> TestClient:
    creds = tmp_path / "keys.toml"
    write_keys(creds, f'[[keys]]\nsecret_id = "{SECRET_ID}"\nsecret_key = "{SECRET_KEY}"\n')
    config = Settings(model_dir=model_dir, credentials=creds, config_dir=tmp_path, workers=1, **settings)
    app, _, _ = build_app(config)
    return TestClient(app, base_url=f"http://{HOST}")


def test_request_over_the_deadline_times_out_and_the_server_keeps_serving(
    model_dir: Path, tmp_path: Path
) -> None:
    image = base64.b64encode(
        shared("robustness", "face_recognition", "obama_and_biden.jpg").read_bytes()
    ).decode()
    with make_client(model_dir, tmp_path, deadline=0.02, url_deadline=0.01) as client:
        answers = [signed_post(client, {"Image": image}) for _ in range(3)]
        for answer in answers:
            assert answer["Error"]["Code"] == "FailedOperation.RequestTimeout"  # type: ignore[index]
            assert answer["RequestId"]
        # a job that held the worker past its deadline killed it; a new one takes its place
        deadline = time.monotonic() + 60
        while client.get("/healthz").json()["status"] != "ok":
            assert time.monotonic() < deadline, "the worker was not replaced"
            time.sleep(0.1)
        assert client.get("/readyz").json() == {"status": "ready"}  # SQLite answers


def test_a_normal_request_in_process(model_dir: Path, tmp_path: Path) -> None:
    image = base64.b64encode(shared("robustness", "face_recognition", "two_people.jpg").read_bytes()).decode()
    with make_client(model_dir, tmp_path) as client:
        answer = signed_post(client, {"Image": image, "Mode": 1})
        assert len(answer["DenseFaceShapeSet"]) == 1  # type: ignore[arg-type]
        # points are clipped to the image like the box
        shape = answer["DenseFaceShapeSet"][0]  # type: ignore[index]
        xs = [p["X"] for name in ("Chin", "Forehead") for p in shape[name]]
        assert min(xs) >= 0
        assert max(xs) < answer["ImageWidth"]  # type: ignore[operator]


def failing_client(model_dir: Path, failure: BaseException) -> TestClient:
    """A server whose one worker process builds its Analyzer with ``failure`` in its first mesh run."""
    config = WorkerConfig(analyzer_factory=functools.partial(failing_analyzer, model_dir, failure))
    state = ApiApp(
        credentials=CredentialStore([Credential(SECRET_ID, SECRET_KEY)]),
        service=ActionService(UrlFetcher()),
        pool_factory=lambda: ProcessPool(1, config),
        default_qps=None,
        deadline=10,
    )
    return TestClient(create_app(state, metrics_token=METRICS_TOKEN), base_url=f"http://{HOST}")


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (RuntimeError("tensorflow/lite/kernels/conv.cc: Node number 3 (CONV_2D) failed to invoke."), None),
        (ValueError("Cannot set tensor: Dimension mismatch"), None),
        (MemoryError(), None),
        (TypeError("a bug"), "InternalError"),
        (KeyError("a bug"), "InternalError"),
    ],
)
def test_a_failed_model_run_is_server_error_and_logged_with_the_request_id(
    model_dir: Path, failure: BaseException, code: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    expected = code or "FailedOperation.ServerError"
    image = base64.b64encode(shared("robustness", "face_recognition", "two_people.jpg").read_bytes()).decode()
    with (
        caplog.at_level(logging.ERROR, logger="denseface.server.calls"),
        failing_client(model_dir, failure) as client,
    ):
        answer = signed_post(client, {"Image": image})
        assert answer["Error"]["Code"] == expected  # type: ignore[index]
        message = answer["Error"]["Message"]  # type: ignore[index]
        assert ("retry" in message) is (code is None), message
        request_id = str(answer["RequestId"])
        logged = [r for r in caplog.records if request_id in r.getMessage()]
        assert logged, caplog.text
        assert logged[0].exc_info is not None
        # the worker's traceback, down to the original exception
        remote = str(logged[0].exc_info[1])
        assert "Traceback (most recent call last)" in remote, remote
        assert f"{type(failure).__name__}: {failure}".rstrip(": ") in remote, remote
        before = client.get("/healthz", headers=METRICS_AUTH).json()["worker_processes"]
        # the next request is served normally, by the same worker process and its models
        faces = signed_post(client, {"Image": image})["DenseFaceShapeSet"]
        assert len(faces) == 2  # type: ignore[arg-type]
        after = client.get("/healthz", headers=METRICS_AUTH).json()
        assert after["worker_restarts"] == 0
        assert after["worker_processes"][0]["pid"] == before[0]["pid"]


def test_runtime_failures_are_typed_inference_errors(model_dir: Path) -> None:
    """The engine says which failures are a failed model run: the runtime's RuntimeError/ValueError."""
    image = shared("robustness", "face_recognition", "two_people.jpg")
    for failure in (RuntimeError("Node number 3 (CONV_2D) failed to invoke."), ValueError("tensor")):
        analyzer = failing_analyzer(model_dir, failure)
        with pytest.raises(InferenceError) as info:
            analyzer.analyze(image)
        assert info.value.code == "FailedOperation.ServerError"
        assert info.value.__cause__ is failure
        assert "retry" in info.value.message
        assert "CONV_2D" not in info.value.message
        assert len(analyzer.analyze(image)) == 2  # the same models keep working
    analyzer = failing_analyzer(model_dir, TypeError("a bug"))
    with pytest.raises(TypeError):
        analyzer.analyze(image)


@pytest.mark.parametrize("method", ["TRACE", "PROPFIND", "PUT", "OPTIONS"])
def test_every_other_method_is_unsupported_protocol_in_json(
    model_dir: Path, tmp_path: Path, method: str
) -> None:
    with make_client(model_dir, tmp_path) as client:
        response = client.request(method, "/")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.json()["Response"]["Error"]["Code"] == "UnsupportedProtocol"


def test_unknown_paths_answer_json(model_dir: Path, tmp_path: Path) -> None:
    with make_client(model_dir, tmp_path) as client:
        response = client.post("/v2/whatever", content=b"{}")
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/json"
        assert response.json()["Response"]["RequestId"]
        assert response.json()["Response"]["Error"]["Code"] == "UnsupportedProtocol"
        english = client.get("/nope", headers={"X-TC-Language": "en-US"}).json()["Response"]["Error"]
        assert english["Message"] == "The path `/nope` does not exist; the API is served at / (GET or POST)."
        # a method a non-API path does not serve: 405, the same envelope
        for method, path in (("POST", "/healthz"), ("POST", "/metrics"), ("DELETE", "/static/app.js")):
            response = client.request(method, path)
            assert response.status_code == 405
            assert response.headers["content-type"] == "application/json"
            assert response.json()["Response"]["Error"]["Code"] == "UnsupportedProtocol"


def test_environment_settings_reach_serve() -> None:
    args = build_parser().parse_args(["serve"])
    assert args.host is None  # flags only override the environment when given
    assert args.port is None
    settings = Settings.from_env(
        {"DENSEFACE_PORT": "9123", "DENSEFACE_HOST": "0.0.0.0", "DENSEFACE_QPS": "0"}
    )
    assert (settings.host, settings.port) == ("0.0.0.0", 9123)
    assert settings.default_qps is None  # 0 = unlimited
    assert Settings.from_env({}).default_qps == 50.0  # Tencent's documented rate for this interface group
    assert Settings.from_env({"DENSEFACE_PORT": "9123"}, port=8001).port == 8001
    with pytest.raises(ValueError, match="url_deadline"):
        Settings(deadline=5, url_deadline=5)


def test_detector_setting_from_the_environment() -> None:
    assert Settings.from_env({}).detector == "thorough"
    assert Settings.from_env({"DENSEFACE_DETECTOR": "fast"}).detector == "fast"
    assert Settings.from_env({"DENSEFACE_DETECTOR": "fast"}, detector="thorough").detector == "thorough"
    with pytest.raises(ValueError, match="detector"):
        Settings.from_env({"DENSEFACE_DETECTOR": "quick"})


def test_redis_url_must_be_a_redis_url() -> None:
    assert Settings.from_env({"DENSEFACE_REDIS_URL": "redis://127.0.0.1:6379/0"}).redis_url
    assert Settings.from_env({"DENSEFACE_REDIS_URL": ""}).redis_url is None
    with pytest.raises(ValueError, match="redis://"):
        Settings.from_env({"DENSEFACE_REDIS_URL": "http://127.0.0.1:6379"})
