"""The HTTP load and hand-off benchmarks end to end with tiny settings: real processes, 0 errors, a table."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def run_benchmark(
    script: str, *args: str, model_dir: Path, cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``benchmarks/SCRIPT ARGS`` in a child process on the test models; asserts it exited 0."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, "DENSEFACE_MODEL_DIR": str(model_dir)},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def test_http_load_benchmark_smoke(model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    args = ["--duration", "1", "--levels", "1,4", "--no-library", "--warmup", "2", "--json", str(out)]
    done = run_benchmark("http_load.py", *args, model_dir=model_dir, cwd=tmp_path)
    assert "| concurrency | requests | req/s |" in done.stdout
    report = json.loads(out.read_text())
    assert [level["concurrency"] for level in report["levels"]] == [1, 4]
    for level in report["levels"]:
        assert level["requests"] > 0
        assert level["errors"] == 0, level["error_codes"]
        assert level["rss_before_mb"] > 0
        # main process + worker processes: both counted, the workers doing the model work
        assert level["rss_after_mb"] > level["main_rss_after_mb"] > 0
        assert level["workers_cpu_ms_per_req"] > level["main_cpu_ms_per_req"] > 0
        assert level["handoff_ms_per_job"] > 0


def test_handoff_benchmark_smoke(model_dir: Path, tmp_path: Path) -> None:
    done = run_benchmark("handoff.py", "--jobs", "20", model_dir=model_dir, cwd=tmp_path)
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and "ms" not in line]
    assert len(rows) == 4, done.stdout  # the three jobs (and the alignment row)


def test_metering_benchmark_smoke(model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "metering.json"
    args = ["--metering", "--requests", "6", "--levels", "2", "--rounds", "1", "--warmup", "2"]
    args += ["--workers", "1", "--json", str(out)]
    stores = "off,sqlite,redis" if shutil.which("redis-server") else "off,sqlite"
    done = run_benchmark(
        "http_load.py", *args, "--stores", stores, model_dir=model_dir, cwd=tmp_path, timeout=180
    )
    assert "| store | request | c |" in done.stdout
    rows = json.loads(out.read_text())["metering"]
    assert [(r["store"], r["request"]) for r in rows] == [
        (store, request) for request in ("photo", "empty") for store in stores.split(",")
    ]
    for row in rows:
        assert (row["requests"], row["rounds"]) == (6, 1)
        assert row["errors"] == 0, row["error_codes"]
        assert row["store_ms_per_req"] > 0, row  # measured by the server itself (/metrics)
