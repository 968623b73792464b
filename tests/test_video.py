"""Video: the tracker on the shared clips (real models, real frames), the One Euro filter."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from denseface import OneEuro, Tracker, VideoFrame
from denseface.api import Analyzer
from denseface.engine.smoothing import PointFilter
from denseface.engine.tracker import interocular
from denseface.video import read_frames
from tests.conftest import shared

Clip = list[tuple[float, np.ndarray]]

# face_noface.mov: the man talks on frames 0–71, then title frames without a face (per-frame analyze
# finds exactly that split; benchmarks/video.py)
FACE_FRAMES = 72


def _clip(name: str) -> Clip:
    return [(f.time, f.rgb) for f in read_frames(shared("video", name))]


@pytest.fixture(scope="module")
def single_face() -> Clip:
    return _clip("single_face.mp4")


@pytest.fixture(scope="module")
def tracked(analyzer: Analyzer, single_face: Clip) -> list[VideoFrame]:
    return list(analyzer.track(single_face))


def jitter(frames: list[VideoFrame]) -> float:
    """Mean |p[t-1] - 2 p[t] + p[t+1]| over the 888 points, ÷ the inter-ocular distance."""
    points = [f.faces[0].face.points for f in frames]
    iods = [interocular(f.faces[0].face.mesh) for f in frames]
    values = [
        float(np.linalg.norm(points[t - 1] - 2 * points[t] + points[t + 1], axis=1).mean()) / iods[t]
        for t in range(1, len(points) - 1)
    ]
    return sum(values) / len(values)


def test_every_frame_one_face_one_id(tracked: list[VideoFrame], single_face: Clip) -> None:
    assert [f.index for f in tracked] == list(range(len(single_face))) == list(range(72))
    assert [f.time for f in tracked] == [t for t, _ in single_face]
    assert all(len(f.faces) == 1 for f in tracked)
    assert {f.faces[0].id for f in tracked} == {0}
    assert tracked[0].faces[0].detected
    assert not any(f.faces[0].detected for f in tracked[1:])
    face = tracked[40].faces[0].face
    assert face.points.shape == (888, 2)
    assert not face.points.flags.writeable
    assert 0 < face.box.x < face.box.x + face.box.width < 640
    assert face.evidence is not None
    assert face.evidence >= 1.10


def test_smoothing_lowers_jitter_and_stays_close(
    analyzer: Analyzer, tracked: list[VideoFrame], single_face: Clip
) -> None:
    raw = list(analyzer.track(single_face, smooth=False))
    assert {f.faces[0].id for f in raw} == {0}
    assert jitter(tracked) < 0.6 * jitter(raw)
    # smoothing moves points little: mean distance to the raw points within 2% of the inter-ocular
    deviation = [
        float(np.linalg.norm(s.faces[0].face.points - r.faces[0].face.points, axis=1).mean())
        / interocular(r.faces[0].face.mesh)
        for s, r in zip(tracked, raw, strict=True)
    ]
    assert sum(deviation) / len(deviation) < 0.02
    # the first frame of a track is never smoothed
    assert np.array_equal(tracked[0].faces[0].face.points, raw[0].faces[0].face.points)


def test_face_then_no_face(analyzer: Analyzer) -> None:
    frames = list(analyzer.track(_clip("face_noface.mov")))
    assert len(frames) == 169
    with_face = [len(f.faces) for f in frames[:FACE_FRAMES]]
    assert with_face.count(1) >= 0.95 * FACE_FRAMES
    assert {t.id for f in frames for t in f.faces} == {0}
    assert all(not f.faces for f in frames[FACE_FRAMES:])


def test_two_faces_leave_and_enter(analyzer: Analyzer, single_face: Clip) -> None:
    """The man twice side by side; the right copy blanked on frames 30–49: its track ends, the left
    one keeps its id, and the returning face gets a new id within ``detect_every`` frames."""
    frames = []
    for i, (t, rgb) in enumerate(single_face):
        right = np.zeros_like(rgb) if 30 <= i < 50 else rgb
        frames.append((t, np.ascontiguousarray(np.hstack([rgb, right]))))
    result = list(analyzer.track(frames, detect_every=5))

    def ids(frame: VideoFrame) -> dict[str, int]:
        return {("left" if t.face.box.x < 640 else "right"): t.id for t in frame.faces}

    first = ids(result[0])
    assert set(first) == {"left", "right"}
    assert first["left"] != first["right"]
    assert all(ids(f) == first for f in result[:30])
    assert all(ids(f) == {"left": first["left"]} for f in result[31:50])
    back = [i for i in range(50, 72) if "right" in ids(result[i])]
    assert back[0] <= 55
    assert back == list(range(back[0], 72))
    assert all(ids(result[i]) == {"left": first["left"], "right": 2} for i in back)


def test_face_enters(analyzer: Analyzer) -> None:
    """face_noface.mov played backwards (title frames, then the man): found within detect_every frames."""
    clip = _clip("face_noface.mov")
    backwards = [(t, rgb) for (t, _), (_, rgb) in zip(clip, reversed(clip), strict=True)]
    frames = list(analyzer.track(backwards, detect_every=10))
    enters = len(clip) - FACE_FRAMES
    assert all(not f.faces for f in frames[:enters])
    found = [i for i, f in enumerate(frames) if f.faces]
    assert enters <= found[0] < enters + 3  # no face followed: the detectors run every 3rd frame
    assert found == list(range(found[0], len(clip)))
    assert {t.id for f in frames for t in f.faces} == {0}


def test_hand_over_the_face(analyzer: Analyzer, single_face: Clip) -> None:
    """A skin-coloured hand sweeps over the man's face and back in one second (about 10 covered frames):
    the face is in every frame the per-frame analysis finds it, under one id; the smoothed points
    stay within 2% of the inter-ocular distance of the per-frame ones (no lag carried over the gap)."""
    frames = []
    for t, rgb in single_face:
        phase = (t - 0.6) / 0.5
        if 0.0 <= phase <= 2.0:
            across = phase if phase <= 1.0 else 2.0 - phase
            rgb = np.ascontiguousarray(rgb.copy())
            cv2.ellipse(rgb, (round(-64 + across * 768), 198), (64, 90), 0, 0, 360, (214, 160, 130), -1)
        frames.append((t, rgb))
    result = list(analyzer.track(frames))
    per_frame = [analyzer.analyze(rgb) for _, rgb in frames]
    seen = [i for i, faces in enumerate(per_frame) if faces]
    assert len(seen) >= 60
    assert all(result[i].faces for i in seen)
    assert {t.id for f in result for t in f.faces} == {0}
    gaps = []
    for i in seen:
        mesh = per_frame[i][0].mesh
        iod = float(np.linalg.norm(mesh[263, :2] - mesh[33, :2]))
        gap = np.linalg.norm(result[i].faces[0].face.points - per_frame[i][0].points, axis=1)
        gaps.append(float(gap.mean()) / iod)
    assert float(np.mean(gaps)) < 0.02


def test_no_face_clip(analyzer: Analyzer) -> None:
    frames = list(analyzer.track(_clip("no_face.mp4"), mode=1, detect_every=3))
    assert len(frames) == 95
    assert all(not f.faces for f in frames)


def test_tracker_checks_its_input(analyzer: Analyzer, single_face: Clip) -> None:
    tracker = Tracker(analyzer)
    tracker.update(single_face[0][1], 1.0)
    with pytest.raises(ValueError, match="increase"):
        tracker.update(single_face[1][1], 1.0)
    with pytest.raises(ValueError, match="uint8 RGB"):
        tracker.update(np.zeros((8, 8), np.uint8), 2.0)
    with pytest.raises(ValueError, match="mode"):
        Tracker(analyzer, mode=2)
    with pytest.raises(ValueError, match="detect_every"):
        Tracker(analyzer, detect_every=0)
    tracker.reset()
    again = tracker.update(single_face[0][1], 0.0)
    assert again.index == 0
    assert [t.id for t in again.faces] == [1]  # a new video: a new track


def test_one_euro_is_scale_free_and_follows_time() -> None:
    rng = np.random.default_rng(0)
    times = np.cumsum(rng.uniform(0.02, 0.05, 60))  # a variable frame rate
    path = np.cumsum(rng.normal(0, 1.0, (60, 5, 2)), axis=0).astype(np.float32)
    small, large = PointFilter(OneEuro()), PointFilter(OneEuro())
    for t, pts in zip(times, path, strict=True):
        a = small(pts, float(t), 2.0)
        b = large(pts * 100, float(t), 200.0)
        np.testing.assert_allclose(b, a * 100, rtol=1e-4, atol=1e-3)
    # a still point stays put; a step is followed, fully in the end
    f = PointFilter(OneEuro(min_cutoff=1.0, beta=0.0))
    assert np.array_equal(f(np.zeros((1, 2), np.float32), 0.0, 1.0), np.zeros((1, 2)))
    moved = [float(f(np.ones((1, 2), np.float32), 0.1 * k, 1.0)[0, 0]) for k in range(1, 60)]
    assert 0 < moved[0] < 0.5 < moved[-1]
    assert all(a <= b for a, b in itertools.pairwise(moved))
    assert math.isclose(moved[-1], 1.0, abs_tol=1e-3)
    with pytest.raises(ValueError, match="cutoff"):
        OneEuro(min_cutoff=0.0)
    with pytest.raises(ValueError, match="speed"):
        OneEuro(speed="centroid")


def test_face_speed_lags_less_than_point_speed() -> None:
    """Noisy points at rest, then moving at 3 face sizes per second: the face's own speed (the default
    cutoffs, no deformation term) is about as steady at rest as the former default (each point's speed,
    1 Hz, beta 3) and lags far less in motion."""
    rng = np.random.default_rng(1)
    times = np.arange(90) / 30.0
    base = rng.uniform(0, 100, (50, 2)).astype(np.float32)
    shift = np.where(times < 1.5, 0.0, (times - 1.5) * 300.0)  # face size 100 px
    motion = np.stack([shift, np.zeros_like(shift)], axis=1)[:, None, :]
    raw = (base + rng.normal(0, 0.5, (90, 50, 2)) + motion).astype(np.float32)
    results = {}
    for name, params in (
        ("face", OneEuro(deformation=0.0)),
        ("point", OneEuro(1.0, 3.0, 1.0, speed="point")),
    ):
        f = PointFilter(params)
        out = np.array([f(pts, float(t), 100.0) for t, pts in zip(times, raw, strict=True)])
        error = np.linalg.norm(out - (base + motion), axis=2).mean(axis=1)
        results[name] = (float(error[10:45].mean()), float(error[50:].mean()))
    assert results["face"][0] < 1.2 * results["point"][0]
    assert results["face"][1] < 0.6 * results["point"][1]


def test_read_frames_errors(tmp_path: Path) -> None:
    from denseface.errors import VideoReadError

    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00" * 1000)
    with pytest.raises(VideoReadError, match="cannot open"):
        list(read_frames(garbage))
    with pytest.raises(VideoReadError, match="cannot open"):
        list(read_frames(tmp_path / "missing.mp4"))


def _avi(path: Path, frames: Clip) -> None:

    height, width = frames[0][1].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 30.0, (width, height))
    for _, rgb in frames:
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()


def test_cli_video(model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import json

    from denseface.cli import main

    out, drawn = tmp_path / "out.jsonl", tmp_path / "out.mp4"
    clip = str(shared("video", "single_face.mp4"))
    args = ["video", clip, "--out", str(out), "--draw", str(drawn), "--no-progress", "--mode", "1"]
    code = main(["--model-dir", str(model_dir), *args])
    assert code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["frame"] for r in rows] == list(range(72))
    assert rows[1]["time"] == pytest.approx(1 / 30, abs=1e-4)
    face = rows[10]["faces"][0]
    assert set(face) == {"id", "box", "score", "points", "pose"}
    assert face["id"] == 0
    assert len(face["points"]) == 888
    assert set(face["box"]) == {"x", "y", "width", "height"}
    assert set(face["pose"]) == {"yaw", "pitch", "roll"}
    overlay = list(read_frames(drawn))
    assert len(overlay) == 72
    assert overlay[0].rgb.shape == (360, 640, 3)


def test_cli_video_truncated_keeps_frames(
    model_dir: Path, tmp_path: Path, single_face: Clip, caplog: pytest.LogCaptureFixture
) -> None:
    import json

    from denseface.cli import main

    whole, cut = tmp_path / "whole.avi", tmp_path / "cut.avi"
    _avi(whole, single_face[:30])
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    out = tmp_path / "cut.jsonl"
    code = main(["--model-dir", str(model_dir), "video", str(cut), "--out", str(out), "--no-progress"])
    assert code == 1
    assert "truncated or damaged" in caplog.text
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert 5 < len(rows) < 30
    assert all(len(r["faces"]) == 1 for r in rows)

    garbage = tmp_path / "garbage.webm"
    garbage.write_bytes(b"\x1a\x45\xdf\xa3" + b"\x00" * 500)
    missing_out = tmp_path / "none.jsonl"
    code = main(["--model-dir", str(model_dir), "video", str(garbage), "--out", str(missing_out)])
    assert code == 1
    assert "cannot open" in caplog.text
    assert not missing_out.exists()


def test_deformation_smooths_a_glitch_not_a_motion() -> None:
    """Half the points jump for one frame and come back (a hand or a blur passing over the face): with the
    deformation term the filtered points follow the jump far less; a rigid motion of every point is
    followed exactly as without it. (A deformation that lasts is followed a frame later.)"""
    rng = np.random.default_rng(2)
    base = rng.uniform(0, 100, (60, 2)).astype(np.float32)
    times = np.arange(40) / 30.0
    glitch = np.zeros((40, 60, 2), np.float32)
    glitch[20, :30] = 15.0  # 15% of the face size
    slide = np.zeros((40, 60, 2), np.float32)
    slide[20:] = (np.arange(20) * 10.0)[:, None, None]  # 3 face sizes per second, every point
    for moves, damped in ((glitch, True), (slide, False)):
        outs = {}
        for k in (0.0, 10.0):
            f = PointFilter(OneEuro(deformation=k))
            outs[k] = np.array([f(base + m, float(t), 100.0) for t, m in zip(times, moves, strict=True)])
        error = {k: float(np.abs(out - (base + moves)).mean()) for k, out in outs.items()}
        if damped:  # the glitch: the filtered points follow the jump far less
            assert np.abs(outs[10.0][20:30] - base).max() < 0.3 * np.abs(outs[0.0][20:30] - base).max()
        else:  # a rigid motion has no deformation: followed exactly as without the term
            assert math.isclose(error[10.0], error[0.0], rel_tol=1e-4)
