"""``denseface video``: a video file in, one JSON line per frame out (and an overlay video).

A thin driver over :class:`denseface.api.Tracker`: frames are read with OpenCV (FFmpeg inside: mp4,
mov, avi, webm, mkv, …), timed by the container's timestamps (variable frame rates work), tracked,
written as JSON Lines as they come (flushed, so the frames done survive any failure), and drawn
with the photos' palette into ``--draw`` (``mp4v``).

Errors: a file that cannot be opened, or has no readable frame, stops before any output; a file
that ends before the frames its header declares (by more than :data:`SHORT_TOLERANCE`; container
estimates are off by a few frames) is reported as truncated after the frames read are written.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np
import numpy.typing as npt

from denseface.engine.result import VideoFrame
from denseface.errors import VideoReadError

log = logging.getLogger(__name__)

SHORT_TOLERANCE = 0.05  # a file may end this fraction (and at least 3 frames) short of its frame count


@dataclass(frozen=True)
class Frame:
    index: int
    time: float  # seconds, from the container's timestamps
    rgb: npt.NDArray[np.uint8]


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float
    frames: int  # as declared by the container (an estimate; 0 when unknown)


def probe(path: str | Path) -> VideoInfo:
    capture = _open(path)
    try:
        return _info(capture)
    finally:
        capture.release()


def _open(path: str | Path) -> cv2.VideoCapture:
    if not Path(path).is_file():
        raise VideoReadError(f"{path}: cannot open: no such file")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise VideoReadError(f"{path}: cannot open: not a video OpenCV can read, or truncated (no index)")
    return capture


def _info(capture: cv2.VideoCapture) -> VideoInfo:
    fps = float(capture.get(cv2.CAP_PROP_FPS))
    return VideoInfo(
        int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
        int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        fps if math.isfinite(fps) and fps > 0 else 30.0,
        max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT))),
    )


def read_frames(path: str | Path) -> Iterator[Frame]:
    """The frames of a video as RGB, with their times; :class:`VideoReadError` when it cannot be
    opened, has no frame, or ends early (raised after the frames read have been yielded)."""
    capture = _open(path)
    try:
        info = _info(capture)
        index, last = 0, -math.inf
        while True:
            ok, bgr = capture.read()
            if not ok or bgr is None:
                break
            time = float(capture.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0
            if not (math.isfinite(time) and time > last):  # missing or repeated timestamps
                time = max(last + 1.0 / info.fps, index / info.fps)
            last = time
            yield Frame(index, time, np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8))
            index += 1
    finally:
        capture.release()
    if index == 0:
        raise VideoReadError(f"{path}: no frame could be decoded")
    if info.frames and index < info.frames - max(3, SHORT_TOLERANCE * info.frames):
        raise VideoReadError(
            f"{path}: truncated or damaged: {index} of the {info.frames} frames it declares could be read",
            index,
        )


def frame_json(frame: VideoFrame) -> dict[str, Any]:
    """The JSON object of one frame: ``frame``, ``time`` and each face's id, box, score, 888 points, pose."""
    return {
        "frame": frame.index,
        "time": round(frame.time, 6),
        "faces": [
            {
                "id": tracked.id,
                "box": {k: round(v, 2) for k, v in vars(tracked.face.box).items()},
                "score": round(tracked.face.score, 4),
                "points": np.round(tracked.face.points.astype(np.float64), 2).tolist(),
                "pose": {k: round(v, 2) for k, v in vars(tracked.face.pose).items()},
            }
            for tracked in frame.faces
        ],
    }


def overlay(rgb: npt.NDArray[np.uint8], frame: VideoFrame) -> npt.NDArray[np.uint8]:
    """The frame with its faces drawn as photos are (``engine/draw.py``), each box labelled with its id."""
    from denseface.engine.draw import draw_faces

    out = draw_faces(rgb, [t.face for t in frame.faces])
    for tracked in frame.faces:
        box = tracked.face.box
        scale = max(0.5, box.width / 300.0)
        origin = (round(box.x), max(12, round(box.y - 6 * scale)))
        white = (255, 255, 255)
        cv2.putText(out, f"id {tracked.id}", origin, cv2.FONT_HERSHEY_SIMPLEX, scale, white, 1, cv2.LINE_AA)
    return out


def run(
    source: str | Path,
    out: str,
    *,
    draw: str | None = None,
    model_dir: str | None = None,
    detector: str = "thorough",
    mode: int = 0,
    rotate: bool = False,
    smooth: bool = True,
    detect_every: int = 10,
    progress: bool = True,
) -> int:
    """Track ``source`` into ``out`` (JSON Lines; ``-``: stdout) and optionally ``draw``; the number of
    frames done. Raises :class:`VideoReadError` (after writing the frames done) for a bad file."""
    from tqdm import tqdm

    from denseface.api import Analyzer, Tracker
    from denseface.engine.pipeline import PipelineOptions

    info = probe(source)  # fails before anything is written or any model is loaded
    analyzer = Analyzer(model_dir, options=PipelineOptions(detector=detector))
    tracker = Tracker(analyzer, mode=mode, rotate=rotate, smooth=smooth, detect_every=detect_every)
    done = 0
    with ExitStack() as stack:
        sink: IO[str] = sys.stdout if out == "-" else stack.enter_context(Path(out).open("w"))
        writer: cv2.VideoWriter | None = None
        if draw:
            writer = cv2.VideoWriter(
                draw, cv2.VideoWriter.fourcc(*"mp4v"), info.fps, (info.width, info.height)
            )
            if not writer.isOpened():
                raise VideoReadError(f"cannot write the overlay video {draw}")
            stack.callback(writer.release)
        bar = stack.enter_context(
            tqdm(total=info.frames or None, unit="frame", disable=not progress, desc=Path(source).name)
        )
        for frame in read_frames(source):
            result = tracker.update(frame.rgb, frame.time)
            sink.write(json.dumps(frame_json(result), separators=(",", ":")) + "\n")
            sink.flush()
            if writer is not None:
                writer.write(cv2.cvtColor(overlay(frame.rgb, result), cv2.COLOR_RGB2BGR))
            done += 1
            bar.update()
    log.info("%s: %d frames → %s%s", source, done, out, f" and {draw}" if draw else "")
    return done
