"""The ``denseface`` command end to end, in a subprocess, with the real models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from denseface import REGION_COUNTS
from tests.conftest import shared


def run(model_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DENSEFACE_MODEL_DIR": str(model_dir)}
    return subprocess.run(
        [sys.executable, "-m", "denseface", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_analyze_prints_tencent_shape_and_draws(model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "overlay.png"
    photo = shared("robustness", "face_recognition", "two_people.jpg")
    result = run(model_dir, "analyze", str(photo), "--draw", str(out))
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert (body["ImageWidth"], body["ImageHeight"]) == Image.open(photo).size
    assert body["FaceModelVersion"] == "3.0"
    assert len(body["DenseFaceShapeSet"]) == 2
    for shape in body["DenseFaceShapeSet"]:
        assert {k: len(shape[k]) for k in REGION_COUNTS} == REGION_COUNTS
        assert all(isinstance(p["X"], int) and isinstance(p["Y"], int) for p in shape["Chin"])
    overlay = Image.open(out)
    assert overlay.size == Image.open(photo).size
    # the overlay differs from the photo where the points are drawn
    original = Image.open(photo).convert("RGB")
    assert overlay.convert("RGB").tobytes() != original.tobytes()


def test_analyze_full_format_and_mode_1(model_dir: Path) -> None:
    photo = shared("robustness", "face_recognition", "two_people.jpg")
    result = run(model_dir, "analyze", str(photo), "--format", "full", "--mode", "1", "--compact")
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert len(body["Faces"]) == 1
    face = body["Faces"][0]
    assert len(face["mesh"]) == 478
    assert len(face["ibug68"]) == 68
    assert set(face["pose"]) == {"yaw", "pitch", "roll"}
    assert sum(len(v) for v in face["regions"].values()) == 888


def test_analyze_several_images_and_errors(model_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    good = shared("robustness", "mtcnn", "no-faces.jpg")
    result = run(model_dir, "analyze", str(good), str(bad), "--compact")
    assert result.returncode == 1
    body = json.loads(result.stdout)
    assert body[0]["DenseFaceShapeSet"] == []
    assert body[1]["Error"]["Code"] == "FailedOperation.ImageDecodeFailed"
    assert "broken.jpg" in result.stderr


def test_missing_models_name_the_fix(tmp_path: Path) -> None:
    result = run(tmp_path / "empty", "analyze", str(shared("robustness", "face_recognition", "obama.jpg")))
    assert result.returncode == 1
    assert "denseface models fetch" in result.stderr


def test_layout_figure(model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "layout.png"
    photo = shared("robustness", "face_recognition", "obama.jpg")
    result = run(model_dir, "layout-figure", str(photo), str(out), "--width", "700")
    assert result.returncode == 0, result.stderr
    assert Image.open(out).width == 700


@pytest.mark.parametrize("args", [["analyze"], ["analyze", "x.jpg", "--mode", "3"], ["nope"]])
def test_usage_errors(model_dir: Path, args: list[str]) -> None:
    assert run(model_dir, *args).returncode == 2


def test_analyze_face_format_draws_and_figure(model_dir: Path, tmp_path: Path) -> None:
    """``--format analyze-face``: AnalyzeFace's fields, up to 10 faces (the crowd photo's 6), the 90
    points drawn; ``layout-figure --points 90``."""
    photo = shared("robustness", "deepface", "selfie-many-people.jpg")
    out = tmp_path / "overlay.png"
    result = run(
        model_dir, "analyze", str(photo), "--format", "analyze-face", "--draw", str(out), "--compact"
    )
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert set(body) == {"ImageWidth", "ImageHeight", "FaceShapeSet", "FaceModelVersion"}
    assert len(body["FaceShapeSet"]) == 6
    assert all(sum(len(points) for points in shape.values()) == 90 for shape in body["FaceShapeSet"])
    assert Image.open(out).convert("RGB").tobytes() != Image.open(photo).convert("RGB").tobytes()
    figure = tmp_path / "shape90.png"
    result = run(model_dir, "layout-figure", str(photo), str(figure), "--points", "90", "--width", "600")
    assert result.returncode == 0, result.stderr
    assert Image.open(figure).width == 600
