"""End to end with the official Node.js SDK (``tencentcloud-sdk-nodejs``, pinned in tests/node/) against a
real ``denseface serve``.

The Node.js SDK signs TC3 for the service ``endpoint.split(".")[0]`` (``127`` at ``127.0.0.1:PORT``,
``localhost:PORT`` at ``localhost:PORT``) and signs ``host`` without its port, so this is the test that
the verifier accepts what it really sends. One ``node`` process runs every case (tests/node/run_cases.js)
and prints their outcomes as JSON; each test below checks some of them. Skipped, with the reason, when
Node.js or the SDK is not installed (``make node-sdk`` installs the SDK; ``make test`` does it first).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.conftest import ANALYZE_FACE_FIELDS, REGION_COUNTS, ROOT, SHAPE90, LiveServer, shared

NODE_DIR = ROOT / "tests" / "node"
SDK_VERSION = "4.1.313"
VERSIONS = ("2018-03-01", "2020-03-03")
RESPONSE_FIELDS = {"ImageWidth", "ImageHeight", "DenseFaceShapeSet", "FaceModelVersion", "RequestId"}
SHAPE_FIELDS = {"X", "Y", "Width", "Height", *REGION_COUNTS}


def node_or_skip() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed (no `node` on PATH); `make node-sdk` installs it where it can")
    package = NODE_DIR / "node_modules" / "tencentcloud-sdk-nodejs" / "package.json"
    if not package.exists():
        pytest.skip(f"the Node.js SDK is not installed in {NODE_DIR}/node_modules; run `make node-sdk`")
    installed = json.loads(package.read_text())["version"]
    assert installed == SDK_VERSION, f"tests/node has tencentcloud-sdk-nodejs {installed}, not {SDK_VERSION}"
    return node


def cases(server: LiveServer) -> list[dict[str, Any]]:
    """Every case: the success matrix, then errors. ``endpoint`` keys name the two host forms."""
    endpoints = {"ip": f"127.0.0.1:{server.port}", "localhost": f"localhost:{server.port}"}
    key = {"secretId": server.secret_id, "secretKey": server.secret_key}
    out: list[dict[str, Any]] = []
    for version in VERSIONS:
        for host, endpoint in endpoints.items():
            for method, image in (("POST", "photo"), ("GET", "small")):  # a GET query is at most 32 KB
                out.append(
                    {
                        "id": f"{version}-{host}-tc3-{method}",
                        "version": version,
                        "endpoint": endpoint,
                        "reqMethod": method,
                        "action": "AnalyzeDenseLandmarks",
                        "image": image,
                        **key,
                    }
                )
    for method, sign_method, host in (("POST", "HmacSHA256", "ip"), ("GET", "HmacSHA1", "localhost")):
        out.append(
            {
                "id": f"v1-{sign_method}-{method}",
                "version": "2020-03-03",
                "endpoint": endpoints[host],
                "reqMethod": method,
                "signMethod": sign_method,
                "action": "AnalyzeDenseLandmarks",
                "image": "small",
                **key,
            }
        )
    for host, method in (("ip", "POST"), ("localhost", "GET")):
        out.append(
            {
                "id": f"wrong-key-{host}-{method}",
                "version": "2020-03-03",
                "endpoint": endpoints[host],
                "reqMethod": method,
                "action": "AnalyzeDenseLandmarks",
                "image": "small",
                "secretId": server.secret_id,
                "secretKey": "not-the-key",
            }
        )
    for version in VERSIONS:  # AnalyzeFace: TC3 POST, the 90 points (and "2.0" echoed in 2018-03-01)
        params = {"FaceModelVersion": "2.0"} if version == "2018-03-01" else {}
        base = {"endpoint": endpoints["ip"], "reqMethod": "POST", "image": "photo", "params": params, **key}
        out.append({"id": f"analyze-face-{version}", "version": version, "action": "AnalyzeFace", **base})
    errors = {
        "detect-face": {"action": "DetectFace", "image": "small"},
        "analyze-face-bad-version": {
            "action": "AnalyzeFace",
            "image": "small",
            "params": {"FaceModelVersion": "1.0"},
        },
        "mode-as-string": {"action": "AnalyzeDenseLandmarks", "image": "small", "params": {"Mode": "1"}},
        "no-image": {"action": "AnalyzeDenseLandmarks", "language": "en-US"},
    }
    for case_id, fields in errors.items():
        base = {"version": "2020-03-03", "endpoint": endpoints["localhost"], "reqMethod": "POST", **key}
        out.append({"id": case_id, **base, **fields})
    return out


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, tuple[int, int]]]:
    """``photo``: two_people.jpg as shared (1126×661, two faces); ``small``: a copy that fits a GET."""
    photo = shared("robustness", "face_recognition", "two_people.jpg")
    with Image.open(photo) as image:
        size = image.size
        image.thumbnail((400, 400))
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, "JPEG", quality=75)
        small_size = image.size
    small = tmp_path_factory.mktemp("node") / "small.jpg"
    small.write_bytes(buffer.getvalue())
    return {"photo": (photo, size), "small": (small, small_size)}


@pytest.fixture(scope="module")
def outcomes(live_server: LiveServer, images: dict[str, tuple[Path, tuple[int, int]]]) -> dict[str, Any]:
    node = node_or_skip()
    files = {name: str(path) for name, (path, _) in images.items()}
    spec = {"image_files": files, "cases": cases(live_server)}
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    result = subprocess.run(
        [node, str(NODE_DIR / "run_cases.js")],
        input=json.dumps(spec).encode(),
        capture_output=True,
        cwd=NODE_DIR,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return {item["id"]: item for item in json.loads(result.stdout)}


def check_response(response: dict[str, Any], size: tuple[int, int]) -> None:
    assert set(response) == RESPONSE_FIELDS, sorted(response)
    assert (response["ImageWidth"], response["ImageHeight"]) == size
    assert response["FaceModelVersion"] == "3.0"
    uuid.UUID(response["RequestId"])
    shapes = response["DenseFaceShapeSet"]
    assert len(shapes) == 2
    for shape in shapes:
        assert set(shape) == SHAPE_FIELDS
        assert all(type(shape[name]) is int for name in ("X", "Y", "Width", "Height"))
        assert shape["Width"] > 20
        for region, count in REGION_COUNTS.items():
            points = shape[region]
            assert len(points) == count, region
            assert all(set(p) == {"X", "Y"} and type(p["X"]) is type(p["Y"]) is int for p in points), region
            assert all(0 <= p["X"] < size[0] and 0 <= p["Y"] < size[1] for p in points), region
        assert sum(len(shape[region]) for region in REGION_COUNTS) == 888


def check_error(outcome: dict[str, Any], code: str) -> None:
    assert not outcome["ok"], outcome
    assert outcome["code"] == code, outcome
    assert outcome["message"]
    uuid.UUID(outcome["requestId"])


@pytest.mark.parametrize("method", ["POST", "GET"])
@pytest.mark.parametrize("host", ["ip", "localhost"])
@pytest.mark.parametrize("version", VERSIONS)
def test_tc3(
    outcomes: dict[str, Any],
    images: dict[str, tuple[Path, tuple[int, int]]],
    version: str,
    host: str,
    method: str,
) -> None:
    """Both API versions, endpoint ``127.0.0.1:PORT`` (service ``127``) and ``localhost:PORT`` (service
    ``localhost:PORT``), TC3 POST and GET (``httpProfile.reqMethod``), ``protocol: "http://"``."""
    outcome = outcomes[f"{version}-{host}-tc3-{method}"]
    assert outcome["ok"], outcome
    check_response(outcome["response"], images["photo" if method == "POST" else "small"][1])


@pytest.mark.parametrize("case_id", ["v1-HmacSHA256-POST", "v1-HmacSHA1-GET"])
def test_v1_signatures(
    outcomes: dict[str, Any], images: dict[str, tuple[Path, tuple[int, int]]], case_id: str
) -> None:
    outcome = outcomes[case_id]
    assert outcome["ok"], outcome
    check_response(outcome["response"], images["small"][1])


@pytest.mark.parametrize("case_id", ["wrong-key-ip-POST", "wrong-key-localhost-GET"])
def test_wrong_key(outcomes: dict[str, Any], case_id: str) -> None:
    check_error(outcomes[case_id], "AuthFailure.SignatureFailure")


def test_errors(outcomes: dict[str, Any]) -> None:
    check_error(outcomes["detect-face"], "UnsupportedOperation.UnknowMethod")
    assert "AnalyzeDenseLandmarks" in outcomes["detect-face"]["message"]
    check_error(outcomes["mode-as-string"], "InvalidParameter.InvalidParameter")
    check_error(outcomes["no-image"], "InvalidParameterValue.ImageEmpty")
    assert outcomes["no-image"]["message"].isascii()  # en-US


@pytest.mark.parametrize("version", VERSIONS)
def test_analyze_face(
    outcomes: dict[str, Any], images: dict[str, tuple[Path, tuple[int, int]]], version: str
) -> None:
    outcome = outcomes[f"analyze-face-{version}"]
    assert outcome["ok"], outcome
    response = outcome["response"]
    assert set(response) == ANALYZE_FACE_FIELDS
    assert (response["ImageWidth"], response["ImageHeight"]) == images["photo"][1]
    assert response["FaceModelVersion"] == ("2.0" if version == "2018-03-01" else "3.0")
    assert len(response["FaceShapeSet"]) == 2
    for shape in response["FaceShapeSet"]:
        assert {region: len(points) for region, points in shape.items()} == SHAPE90
        assert all(set(p) == {"X", "Y"} and type(p["X"]) is int for points in shape.values() for p in points)
    check_error(outcomes["analyze-face-bad-version"], "InvalidParameterValue.FaceModelVersionIllegal")
