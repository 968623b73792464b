"""The ASGI app in-process (real models, real worker pool): deadline, routing, settings from the
environment. The end-to-end client tests against a live server are in test_sdk.py / test_tccli.py."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from denseface.cli import build_parser
from denseface.rpc.signing import sign_tc3_request
from denseface.server.run import build_app
from denseface.server.settings import Settings
from tests.conftest import SECRET_ID, SECRET_KEY, shared

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
    creds.write_text(f'[[keys]]\nsecret_id = "{SECRET_ID}"\nsecret_key = "{SECRET_KEY}"\n')
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
        assert client.get("/healthz").json()["status"] == "ok"


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


def test_environment_settings_reach_serve() -> None:
    args = build_parser().parse_args(["serve"])
    assert args.host is None  # flags only override the environment when given
    assert args.port is None
    settings = Settings.from_env(
        {"DENSEFACE_PORT": "9123", "DENSEFACE_HOST": "0.0.0.0", "DENSEFACE_QPS": "0"}
    )
    assert (settings.host, settings.port) == ("0.0.0.0", 9123)
    assert settings.default_qps is None  # 0 = unlimited
    assert Settings.from_env({"DENSEFACE_PORT": "9123"}, port=8001).port == 8001
    with pytest.raises(ValueError, match="url_deadline"):
        Settings(deadline=5, url_deadline=5)
