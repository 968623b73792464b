"""End to end with the real ``tccli`` (a subprocess) against a real ``denseface serve``.

tccli only reaches plain HTTP with ``--endpoint http://127.0.0.1:PORT`` (it then sends that literal string
as ``Host``) and always sends a region. ``HOME`` is a temporary directory: tccli writes its config and a log
with the secret key under ``~/.tccli``.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.conftest import ANALYZE_FACE_FIELDS, REGION_COUNTS, SHAPE90, LiveServer, shared

TCCLI = Path(sys.executable).parent / "tccli"


@pytest.fixture(scope="module")
def small_jpeg() -> tuple[str, int, int]:
    """``two_people.jpg`` downscaled to a ~20 KB JPEG: (base64, width, height)."""
    with Image.open(shared("robustness", "face_recognition", "two_people.jpg")) as image:
        image.thumbnail((480, 480))
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, "JPEG", quality=80)
        size = image.size
    data = buffer.getvalue()
    assert 15_000 < len(data) < 40_000
    return base64.b64encode(data).decode("ascii"), *size


def tccli(
    server: LiveServer,
    home: Path,
    *args: str,
    secret_key: str | None = None,
    action: str = "AnalyzeDenseLandmarks",
) -> subprocess.CompletedProcess[str]:
    if not TCCLI.exists():
        pytest.fail(f"tccli is not installed beside {sys.executable}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENCENTCLOUD_")}
    env["HOME"] = str(home)
    command = [
        str(TCCLI),
        "iai",
        action,
        *args,
        "--endpoint",
        server.base_url,
        "--secretId",
        server.secret_id,
        "--secretKey",
        secret_key or server.secret_key,
        "--region",
        "ap-guangzhou",
    ]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


def check_output(result: subprocess.CompletedProcess[str], width: int, height: int) -> dict[str, Any]:
    assert result.returncode == 0, result.stdout + result.stderr
    response: dict[str, Any] = json.loads(result.stdout)
    assert response["ImageWidth"] == width
    assert response["ImageHeight"] == height
    assert response["FaceModelVersion"] == "3.0"
    uuid.UUID(response["RequestId"])
    shapes = response["DenseFaceShapeSet"]
    assert len(shapes) == 2
    for shape in shapes:
        assert sum(len(shape[region]) for region in REGION_COUNTS) == 888
        for region, count in REGION_COUNTS.items():
            points = shape[region]
            assert len(points) == count, region
            for point in points:
                assert type(point["X"]) is int, region
                assert type(point["Y"]) is int, region
                assert -width // 4 <= point["X"] <= width * 5 // 4
                assert -height // 4 <= point["Y"] <= height * 5 // 4
    return response


@pytest.mark.parametrize("version", [None, "2018-03-01"])
def test_tccli_unfolded_arguments(
    live_server: LiveServer, tmp_path: Path, small_jpeg: tuple[str, int, int], version: str | None
) -> None:
    b64, width, height = small_jpeg
    args = ["--cli-unfold-argument", "--Image", b64]
    if version is not None:
        args += ["--version", version]
    check_output(tccli(live_server, tmp_path, *args), width, height)
    # tccli logged the call (and the key) under the temporary HOME, not the real one
    assert (tmp_path / ".tccli").is_dir()


def test_tccli_input_json(live_server: LiveServer, tmp_path: Path, small_jpeg: tuple[str, int, int]) -> None:
    b64, width, height = small_jpeg
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"Image": b64, "Mode": 0, "FaceModelVersion": "3.0"}))
    result = tccli(live_server, tmp_path, "--cli-input-json", f"file://{request}")
    check_output(result, width, height)


def test_tccli_bad_key(live_server: LiveServer, tmp_path: Path, small_jpeg: tuple[str, int, int]) -> None:
    b64, _, _ = small_jpeg
    result = tccli(live_server, tmp_path, "--cli-unfold-argument", "--Image", b64, secret_key="wrong-key")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "AuthFailure.SignatureFailure" in output
    assert "requestId:" in output
    request_id = output.split("requestId:", 1)[1].split()[0]
    uuid.UUID(request_id)


@pytest.mark.parametrize("version", ["2020-03-03", "2018-03-01"])
def test_tccli_analyze_face(
    live_server: LiveServer, tmp_path: Path, small_jpeg: tuple[str, int, int], version: str
) -> None:
    """AnalyzeFace: 90 integer points per face in Tencent's regions; FaceModelVersion "2.0" echoed."""
    b64, width, height = small_jpeg
    args = ["--cli-unfold-argument", "--Image", b64, "--FaceModelVersion", "2.0", "--version", version]
    result = tccli(live_server, tmp_path, *args, action="AnalyzeFace")
    assert result.returncode == 0, result.stdout + result.stderr
    response = json.loads(result.stdout)
    assert set(response) == ANALYZE_FACE_FIELDS
    assert (response["ImageWidth"], response["ImageHeight"], response["FaceModelVersion"]) == (
        width,
        height,
        "2.0",
    )
    assert len(response["FaceShapeSet"]) == 2
    for shape in response["FaceShapeSet"]:
        assert {region: len(points) for region, points in shape.items()} == SHAPE90
        assert all(type(p["X"]) is int and 0 <= p["X"] < width for points in shape.values() for p in points)
    bad = tccli(
        live_server, tmp_path, "--cli-unfold-argument", "--Image", b64, "--Mode", "3", action="AnalyzeFace"
    )
    assert bad.returncode != 0
    assert "InvalidParameterValue" in bad.stdout + bad.stderr
