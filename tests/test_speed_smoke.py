"""Smoke test of benchmarks/speed.py: it runs end to end with the real models and prints a table.

No timing is asserted (timings on shared machines are noise); only structure and face counts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from denseface.engine import models
from denseface.errors import ModelsMissingError

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "speed.py"


@pytest.fixture(scope="module")
def model_dir() -> Path:
    try:
        return models.locate(models.model_dir())[models.MESH.name].parent
    except ModelsMissingError as exc:
        pytest.skip(f"models not fetched: {exc}")


def test_quick_run_prints_table_and_json(model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "speed.json"
    env = {**os.environ, "DENSEFACE_MODEL_DIR": str(model_dir)}
    cmd = [sys.executable, str(SCRIPT), "--quick", "--no-mediapipe", "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]

    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    assert header[:4] == ["pipeline", "photo", "faces", "median ms"]
    assert "floor ms" in header
    assert "÷ MediaPipe" in header
    body = [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[1:]]
    assert len(body) == 4  # one config × four photos in quick mode
    assert all(len(row) == len(header) for row in body)
    assert all(row[0] == "denseface default" for row in body)
    assert "MediaPipe Tasks" not in proc.stdout.split("## Speed")[1]

    data = json.loads(out.read_text())
    assert data["meta"]["runs"] == 3
    result = data["results"]["denseface default"]
    cases = result["cases"]
    assert set(cases) == {"portrait", "group", "wide", "rotations"}
    assert cases["portrait"]["faces"] == [1]
    # the two adults, sure in the cascade's first view; the child cut by the bottom edge, which only
    # CenterFace over the whole photo sees (no BlazeFace evidence there), is left to the exhaustive
    # profile (docs/face-finding.md)
    assert cases["group"]["faces"] == [2]
    assert cases["rotations"]["faces"] == [1, 1, 1, 1]  # rotate=True recovers every turn
    for case in cases.values():
        assert len(case["ms"]) == 3
        assert case["median_ms"] > 0
        assert case["floor_ms"] > 0
        assert all(full >= 1 and mesh >= 1 for full, _short, mesh, _cf in case["invokes"])
    # the portrait is the cascade's ordinary case: sure without verification, no CenterFace run
    assert all(cf == 0 and full == 1 for full, _s, _m, cf in cases["portrait"]["invokes"])
    # the padded photo's child is not sure: it is verified on its crop (CenterFace and short-range)
    assert all(cf >= 1 for *_, cf in cases["wide"]["invokes"])
    assert result["raw_invoke_ms"]["detector"] > 0
    assert result["raw_invoke_ms"]["mesh"] > 0
    assert result["peak_rss_mb"] >= result["rss_after_import_mb"] > 0
