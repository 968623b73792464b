"""Smoke test of benchmarks/batch.py: it runs end to end (library loop, 1 and 2 local workers) with the real
models and prints its tables. No speed is asserted (timings on shared machines are noise); only structure,
and that every configuration finds the same faces in the same photos."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "batch.py"


def test_quick_run_prints_tables_and_json(model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "batch.json"
    env = {**os.environ, "DENSEFACE_MODEL_DIR": str(model_dir)}
    cmd = [sys.executable, str(SCRIPT), "--quick", "--no-ray", "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "## Batch throughput (8 photos" in proc.stdout
    assert "load average before" in proc.stdout
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert [cell.strip() for cell in rows[0].strip("|").split("|")][:2] == ["configuration", "photos/s"]
    assert any(line.startswith("| 2 workers ÷ 1 worker |") for line in rows)

    data = json.loads(out.read_text())
    results = data["results"]
    assert set(results) == {"library loop", "local 1", "local 2"}
    faces = {name: r["faces"] for name, r in results.items()}
    assert len(set(faces.values())) == 1, faces  # the same faces whichever way the photos go
    assert faces["library loop"] >= 8
    assert all(r["photos"] == 8 for r in results.values())
    assert len(results["local 2"]["rss_mb"]) == 2
    assert all(rss > 50 for rss in results["local 1"]["rss_mb"] + results["local 2"]["rss_mb"])
    assert results["local 2"]["restarts"] == 0
    assert {"2 workers ÷ 1 worker", "1 worker ÷ library loop", "Ray 2 ÷ local 2"} <= set(data["ratios"])
    assert all(isinstance(r["cpu_ms_per_photo"], float) for r in results.values())  # noise: any sign
