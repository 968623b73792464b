"""``denseface batch`` and ``denseface.batch``: real photos, the real models, real worker processes, a real
HTTP server for URLs, real signals to a real ``denseface batch`` process, and a real local Ray runtime."""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from denseface.api import Analyzer
from denseface.batch import analyze_batch, read_rows, run_batch
from denseface.batch.inputs import IMAGE_EXTENSIONS, collect_inputs
from denseface.batch.local import LocalPool
from denseface.batch.rows import RowOptions
from denseface.batch.worker import WorkerConfig
from tests.batch_faults import killing_analyzer
from tests.conftest import ROOT, free_port, shared

FACE_A = ("landmarks", "images", "eos_lfpw__image_0001.png")
FACE_B = ("landmarks", "images", "mmpose_tests__cofw__001766.jpg")
FACE_C = ("robustness", "deepface", "img1.jpg")
NO_FACE = ("robustness", "mtcnn", "no-faces.jpg")
DECODE_FAILED = "FailedOperation.ImageDecodeFailed"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Faces (one in a sub-folder), a photo without a face, a corrupt file, a GIF and a non-image."""
    root = tmp_path_factory.mktemp("photos")
    (root / "sub").mkdir()
    shutil.copy(shared(*FACE_A), root / "a.png")
    shutil.copy(shared(*FACE_B), root / "b.jpg")
    shutil.copy(shared(*FACE_C), root / "sub" / "c.jpg")
    shutil.copy(shared(*NO_FACE), root / "empty.jpg")
    (root / "corrupt.jpg").write_bytes(shared(*FACE_B).read_bytes()[:300])  # a cut JPEG
    with Image.open(shared(*FACE_A)) as image:
        image.convert("RGB").save(root / "face.gif")
    (root / "notes.txt").write_text("not an image: not an input of the folder")
    return root


@pytest.fixture(scope="module")
def photo_server() -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 serving the shared photos."""
    handler = functools.partial(_QuietHandler, directory=str(shared()))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def cli(model_dir: Path, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DENSEFACE_MODEL_DIR": str(model_dir), **kwargs.pop("env", {})}
    cmd = [sys.executable, "-m", "denseface", "batch", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False, cwd=ROOT)


def by_path(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    counts = Counter(row["path"] for row in rows)
    assert all(n == 1 for n in counts.values()), [p for p, n in counts.items() if n > 1]
    return {row["path"]: row for row in rows}


def assert_like_library(row: dict[str, Any], analyzer: Analyzer, path: Path) -> None:
    """The row holds what the library finds in the same photo, rounded to 0.01 px."""
    faces = analyzer.analyze(path)
    assert row["error"] is None
    assert len(row["faces"]) == len(faces) >= 1
    with Image.open(path) as image:
        assert (row["width"], row["height"]) == image.size
    for got, face in zip(row["faces"], faces, strict=True):
        points = np.array(got["points"])
        assert points.shape == (888, 2)
        np.testing.assert_allclose(points, face.points, atol=0.0051)
        assert got["box"]["width"] == pytest.approx(face.box.width, abs=0.0051)
        assert got["score"] == pytest.approx(face.score, abs=6e-5)
        assert got["pose"]["yaw"] == pytest.approx(face.pose.yaw, abs=0.0051)
        assert "mesh" not in got


@pytest.fixture(scope="module")
def local_rows(
    model_dir: Path, folder: Path, photo_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    """``denseface batch FOLDER @LIST --out rows.jsonl --workers 2``: the folder and a list of URLs and
    paths (an allowed URL, one to a private address, an ftp URL, a missing file, a duplicate)."""
    work = tmp_path_factory.mktemp("batch")
    listing = work / "list.txt"
    urls = {
        "ok": f"{photo_server}/{'/'.join(FACE_B)}",
        "private": "http://10.1.2.3/photo.jpg",
        "ftp": "ftp://example.com/photo.jpg",
        "404": f"{photo_server}/no/such/photo.jpg",
    }
    missing = str(work / "missing.jpg")
    listing.write_text(
        "# photos from elsewhere\n\n" + "\n".join([*urls.values(), missing, str(folder / "a.png")]) + "\n"
    )
    out = work / "rows.jsonl"
    result = cli(
        model_dir, str(folder), f"@{listing}", "--out", str(out), "--workers", "2",
        env={"DENSEFACE_URL_ALLOW": "127.0.0.1/32"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "done: 11 photos" in result.stderr
    return by_path(read_rows(out)), urls, missing, result.stderr


def test_folder_and_list_give_one_row_each(local_rows: Any, folder: Path, analyzer: Analyzer) -> None:
    rows, urls, missing, log = local_rows
    files = [folder / n for n in ("a.png", "b.jpg", "corrupt.jpg", "empty.jpg", "face.gif", "sub/c.jpg")]
    assert set(rows) == {str(p) for p in files} | set(urls.values()) | {missing}
    assert next(iter(rows.values())).keys() == {"path", "width", "height", "faces", "error"}
    for name in ("a.png", "b.jpg", "sub/c.jpg"):
        assert_like_library(rows[str(folder / name)], analyzer, folder / name)
    # the photo fetched over HTTP is the same photo as b.jpg: the same row but its path
    assert {**rows[urls["ok"]], "path": ""} == {**rows[str(folder / "b.jpg")], "path": ""}
    assert rows[str(folder / "empty.jpg")] == {
        "path": str(folder / "empty.jpg"), "width": 199, "height": 148, "faces": [], "error": None
    }  # fmt: skip
    errors = {path: row["error"] for path, row in rows.items() if row["error"] is not None}
    assert {path: e["code"] for path, e in errors.items()} == {
        str(folder / "corrupt.jpg"): DECODE_FAILED,
        missing: DECODE_FAILED,
        urls["private"]: "FailedOperation.ImageDownloadError",
        urls["ftp"]: "InvalidParameterValue.UrlIllegal",
        urls["404"]: "FailedOperation.ImageDownloadError",
    }
    assert_like_library(rows[str(folder / "face.gif")], analyzer, folder / "face.gif")  # as analyze does
    assert "cannot read" in errors[missing]["message"]
    assert "private" in errors[urls["private"]]["message"]
    assert all(not rows[p]["faces"] for p in errors)
    assert "11 photos" in log
    assert "5 faces, 5 errors" in log
    assert f"skipped 1 file(s) that are not images by their extension: {folder / 'notes.txt'}" in log


def test_parquet_rows_equal_jsonl_rows(local_rows: Any, folder: Path, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    out = tmp_path / "rows.parquet"
    summary = run_batch([str(folder)], out, workers=2, part_rows=2)
    assert (summary.photos, summary.faces, summary.errors) == (6, 4, 1)
    parts = sorted(p.name for p in out.iterdir())
    assert parts == [f"part-0000{i}.parquet" for i in range(3)]  # 6 rows, 2 a part
    table = pq.read_table(out)  # the directory is one data set for any Parquet reader
    assert table.num_rows == 6
    assert table.schema.field("faces").type.value_type.field("points").type.value_type.list_size == 2
    jsonl = local_rows[0]
    assert by_path(table.to_pylist()) == {p: r for p, r in jsonl.items() if p.startswith(str(folder))}


def test_full_format_mode_1_and_rotate(model_dir: Path, analyzer: Analyzer, tmp_path: Path) -> None:
    path = shared("robustness", "face_recognition", "obama_and_biden.jpg")
    turned = tmp_path / "turned.png"
    Image.open(path).convert("RGB").transpose(Image.Transpose.ROTATE_90).save(turned)
    rows = by_path(
        list(analyze_batch([str(path), str(turned)], mode=1, rotate=True, format="full", model_dir=model_dir))
    )
    for source in (path, turned):
        (face,) = rows[str(source)]["faces"]
        (largest,) = analyzer.analyze(source, mode=1, rotate=True)
        assert np.array(face["mesh"]).shape == (478, 3)
        np.testing.assert_allclose(face["mesh"], largest.mesh, atol=0.0051)
        np.testing.assert_allclose(face["points"], largest.points, atol=0.0051)


def test_a_dead_worker_is_replaced_and_its_photo_retried_once(
    model_dir: Path, folder: Path, tmp_path: Path
) -> None:
    photo = Image.open(folder / "b.jpg")
    photo.resize((300, 400)).save(tmp_path / "poison.png")  # kills every worker that analyses it
    photo.resize((310, 410)).save(tmp_path / "flaky.png")  # kills the first worker only
    factory = functools.partial(killing_analyzer, model_dir, (300, 400), (310, 410), tmp_path / "killed")
    sources = [str(tmp_path / "poison.png"), str(folder / "a.png"), str(tmp_path / "flaky.png")]
    sources += [str(folder / "sub" / "c.jpg"), str(folder / "empty.jpg")]
    with LocalPool(2, WorkerConfig(analyzer_factory=factory)) as pool:
        rows = by_path(list(pool.map(sources)))
        assert pool.restarts == 3  # poison twice, flaky once
        assert all(pid is not None for pid in pool.pids)
    assert set(rows) == set(sources)
    poison = rows[sources[0]]["error"]
    assert poison["code"] == "FailedOperation.ServerError"
    assert "twice" in poison["message"]
    assert "SIGKILL" in poison["message"]
    assert rows[sources[2]]["error"] is None  # retried, and analysed
    assert len(rows[sources[2]]["faces"]) == 1
    assert (tmp_path / "killed").exists()
    assert all(rows[s]["error"] is None for s in sources[1:])


def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 66 landmark photos: enough to stop a run half-way."""
    root = tmp_path_factory.mktemp("many")
    for path in sorted(shared("landmarks", "images").iterdir()):
        (root / path.name).symlink_to(path)
    return root


def start(model_dir: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DENSEFACE_MODEL_DIR": str(model_dir)}
    cmd = [sys.executable, "-m", "denseface", "batch", *args, "--workers", "2"]
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stderr=subprocess.PIPE, start_new_session=True)


def test_ctrl_c_leaves_complete_lines_and_resume_does_each_input_once(
    model_dir: Path, many: Path, tmp_path: Path
) -> None:
    out = tmp_path / "rows.jsonl"
    proc = start(model_dir, str(many), "--out", str(out), "--quiet")
    until(lambda: out.exists() and out.read_bytes().count(b"\n") >= 4, 120, "4 rows")
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole process group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()[-2000:]
    assert b"interrupted" in err
    assert b"--resume" in err
    data = out.read_bytes()
    assert data.endswith(b"\n")
    first = [json.loads(line) for line in data.splitlines()]  # every line complete JSON
    assert 4 <= len(first) < 66

    again = subprocess.run(
        [sys.executable, "-m", "denseface", "batch", str(many), "--out", str(out), "--workers", "2"],
        env={**os.environ, "DENSEFACE_MODEL_DIR": str(model_dir)}, capture_output=True, check=False,
    )  # fmt: skip
    assert again.returncode == 2  # an existing OUT is never overwritten
    assert b"--resume" in again.stderr
    proc = start(model_dir, str(many), "--out", str(out), "--resume", "--quiet")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert f"{len(first)} already in the output".encode() in err
    rows = by_path(read_rows(out))  # each input exactly once
    assert set(rows) == set(collect_inputs([str(many)]))
    assert all(r["error"] is None for r in rows.values())


def test_sigkill_leaves_readable_parquet_parts_and_resume_completes(
    model_dir: Path, many: Path, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    out = tmp_path / "rows.parquet"
    proc = start(model_dir, str(many), "--out", str(out), "--part-rows", "3", "--quiet")
    until(lambda: len(list(out.glob("part-*.parquet"))) >= 2, 120, "two parts")
    workers = children(proc.pid)
    assert len(workers) >= 2
    os.kill(proc.pid, signal.SIGKILL)  # the driver only, mid-run: no clean-up at all
    proc.communicate(timeout=30)
    until(lambda: not any(alive(pid) for pid in workers), 20, "the workers to exit with their batch")
    written = pq.read_table(out).num_rows  # what the kill left is a valid data set
    assert written >= 6
    assert written % 3 == 0

    proc = start(model_dir, str(many), "--out", str(out), "--part-rows", "3", "--resume", "--quiet")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-2000:]
    rows = by_path(pq.read_table(out).to_pylist())
    assert set(rows) == set(collect_inputs([str(many)]))
    assert not list(out.glob("*.tmp"))


def test_ray_gives_the_same_rows_as_local_processes(local_rows: Any, folder: Path, tmp_path: Path) -> None:
    import ray

    out = tmp_path / "ray.jsonl"
    try:
        # "local": a new local runtime with 2 CPUs more than actors (2 actors on 2 CPUs deadlock)
        summary = run_batch([str(folder)], out, ray="local", workers=2, options=RowOptions())
        assert ray.cluster_resources()["CPU"] == 4
    finally:
        ray.shutdown()
    assert (summary.photos, summary.faces, summary.errors) == (6, 4, 1)
    jsonl = local_rows[0]
    assert by_path(read_rows(out)) == {p: r for p, r in jsonl.items() if p.startswith(str(folder))}


def test_inputs_from_globs_lists_and_folders_each_once(tmp_path: Path) -> None:
    from denseface.batch.inputs import InputError

    for name in ("a.jpg", "b.PNG", "sub/c.webp", "sub/deeper/d.tif", "sub/notes.txt", ".hidden/e.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    listing = tmp_path / "list.txt"
    listing.write_text(
        f"# a comment\n\n{tmp_path / 'a.jpg'}\nhttps://example.com/p.jpg\n{tmp_path}/sub/*.webp\n"
    )
    got = collect_inputs(
        [str(tmp_path / "sub"), f"@{listing}", str(tmp_path / "**" / "*.jpg"), "missing.jpg"]
    )
    sub = tmp_path / "sub"
    assert got == [
        str(sub / "c.webp"),
        str(sub / "deeper" / "d.tif"),  # a folder: recursive, image extensions only
        str(tmp_path / "a.jpg"),  # the list, in its order; c.webp once
        "https://example.com/p.jpg",
        "missing.jpg",  # an input that does not exist is still an input: its row says so
    ]
    assert collect_inputs([str(tmp_path)]) == [str(tmp_path / "a.jpg"), str(tmp_path / "b.PNG"), *got[:2]]
    with pytest.raises(InputError, match="cannot read the list"):
        collect_inputs([f"@{tmp_path / 'nope.txt'}"])


def test_a_one_photo_batch_takes_what_analyze_takes_and_says_what_it_skipped(
    model_dir: Path, analyzer: Analyzer, tmp_path: Path
) -> None:
    """A PPM (``denseface analyze`` reads it) is a batch input too; the one photo on two workers ends
    without a traceback from a worker that started after the work was done."""
    photos = tmp_path / "photos"
    photos.mkdir()
    with Image.open(shared(*FACE_A)) as image:
        image.convert("RGB").save(photos / "face.ppm")
    (photos / "readme.md").write_text("not a photo")
    out = tmp_path / "rows.jsonl"
    result = cli(model_dir, str(photos), "--out", str(out), "--workers", "2", "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    (row,) = read_rows(out)
    assert_like_library(row, analyzer, photos / "face.ppm")
    assert (
        f"skipped 1 file(s) that are not images by their extension: {photos / 'readme.md'}" in result.stderr
    )
    assert "Traceback" not in result.stderr
    assert {".ppm", ".pgm", ".pbm", ".jpg", ".png", ".webp", ".tif", ".gif", ".bmp"} <= IMAGE_EXTENSIONS
    assert ".txt" not in IMAGE_EXTENSIONS


def test_resume_cuts_a_half_written_line(tmp_path: Path) -> None:
    from denseface.batch.sinks import done_paths, open_sink

    out = tmp_path / "rows.jsonl"
    row = {"path": "a.jpg", "width": 1, "height": 1, "faces": [], "error": None}
    out.write_text(json.dumps(row) + "\n" + '{"path":"b.jpg","wid')  # a crash mid-line
    assert done_paths(out) == {"a.jpg"}
    sink = open_sink(out, full=False, resume=True)
    sink.write({**row, "path": "b.jpg"})
    sink.close()
    assert [r["path"] for r in read_rows(out)] == ["a.jpg", "b.jpg"]


def test_ray_actor_that_dies_is_replaced_and_its_photo_retried_then_an_error_row(
    model_dir: Path, folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray

    from denseface.batch.on_ray import run_ray

    photo = Image.open(folder / "b.jpg")
    photo.resize((300, 400)).save(tmp_path / "poison.png")  # kills every actor that analyses it
    photo.resize((310, 410)).save(tmp_path / "flaky.png")  # kills the first actor only
    factory = functools.partial(killing_analyzer, model_dir, (300, 400), (310, 410), tmp_path / "killed")
    sources = [str(tmp_path / "poison.png"), str(folder / "a.png"), str(tmp_path / "flaky.png")]
    sources.append(str(folder / "sub" / "c.jpg"))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # Ray's worker processes import tests.batch_faults
    ray.init(num_cpus=4, include_dashboard=False)
    try:
        rows = by_path(list(run_ray(sources, workers=2, config=WorkerConfig(analyzer_factory=factory))))
    finally:
        ray.shutdown()
    assert set(rows) == set(sources)
    poison = rows[sources[0]]["error"]
    assert poison["code"] == "FailedOperation.ServerError"
    assert "died, twice" in poison["message"]
    assert (tmp_path / "killed").exists()
    for source in sources[1:]:  # the others, the flaky one included, analysed
        assert rows[source]["error"] is None
        assert len(rows[source]["faces"]) == 1
