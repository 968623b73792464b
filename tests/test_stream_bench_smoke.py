"""benchmarks/stream.py end to end with tiny settings: a real server, 1 and 4 streams, every frame
answered with one face under one TrackId, close to ``denseface video``'s points."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_http_load_smoke import run_benchmark


def test_stream_benchmark_smoke(model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "stream.json"
    args = ["--passes", "1", "--workers", "1", "--detector", "fast", "--json", str(out)]
    done = run_benchmark("stream.py", *args, model_dir=model_dir, cwd=tmp_path, timeout=300)
    assert "| 1 stream |" in done.stdout
    report = json.loads(out.read_text())
    assert report["single"]["fps"] > 0
    assert len(report["four"]) == 4
    assert all(stream["fps"] > 0 for stream in report["four"])
    assert report["quality"]["face_where_video_has_one"] == "72/72"
    assert report["quality"]["track_ids"] == 1
    assert report["quality"]["deviation_iod"] < 0.01
