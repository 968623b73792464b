"""Live stream: frames/s and latency of ``/v1/stream`` for 1 and 4 streams against a real server, beside
``denseface video``'s tracker on the same frames, one run.
(``python benchmarks/stream.py [--passes N] [--workers W] [--detector thorough|fast] [--json OUT]``)

The clip is ``single_face.mp4`` (640×360, 72 frames) as JPEG (quality 90), played ``--passes`` times
in a row. A real ``denseface serve`` (``--workers`` processes, a key without rate limit) runs on a free
port of 127.0.0.1; the clients are ``websockets`` connections in this process. Each stream sends two
frames, then the next one whenever an answer arrives (two in flight), with the clip's own time before
each frame (``{"Time": t}``), and measures per answered frame the latency (frame sent → answer read);
frames/s = answered frames ÷ the stream's wall time. Skipped frames (latest wins) are counted.

The peer, in the same run: ``denseface video``'s work on the same frames in this process — JPEG decode
plus ``Tracker.update`` (one thread), i.e. frames/s of the library's tracker with no network and no
worker hand-off. Quality of the single stream against it: frames where the peer has a face and the
answer has one; TrackIds; mean distance of the 888 points to the peer's on the same frames, ÷ the
inter-ocular distance. The machine is shared: compare the ratios in one run, not the ms across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
from websockets.asyncio.client import connect

from denseface.api import Analyzer, Tracker
from denseface.engine.decode import decode_bytes
from denseface.engine.layout import REGION_NAMES
from denseface.engine.pipeline import PipelineOptions
from denseface.engine.tracker import interocular
from denseface.rpc.stream import stream_url
from denseface.video import read_frames

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "video"
SECRET_ID = "AKIDbenchmarkSTREAM00000000000000000"
SECRET_KEY = "benchmark-stream-secret-key-0123456789"  # a throwaway key for this run's own server


@dataclass
class StreamRun:
    answers: dict[int, dict[str, Any]] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    skipped: int = 0
    errors: int = 0
    seconds: float = 0.0

    def fps(self) -> float:
        return len(self.answers) / self.seconds if self.seconds else 0.0


def clip_frames(passes: int) -> list[tuple[float, bytes]]:
    frames = [(f.time, f.rgb) for f in read_frames(SHARED / "single_face.mp4")]
    step = frames[-1][0] + 1 / 30
    out = []
    for n in range(passes):
        for t, rgb in frames:
            ok, jpeg = cv2.imencode(
                ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90]
            )
            if not ok:
                raise SystemExit("JPEG encoding failed")
            out.append((t + n * step, jpeg.tobytes()))
    return out


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(work: Path, workers: int, detector: str) -> tuple[subprocess.Popen[bytes], str]:
    keys = work / "keys.toml"
    keys.write_text(f'[[keys]]\nsecret_id = "{SECRET_ID}"\nsecret_key = "{SECRET_KEY}"\nqps = 100000\n')
    keys.chmod(0o600)
    port = free_port()
    env = {
        **os.environ,
        "DENSEFACE_CONFIG_DIR": str(work / "config"),
        "DENSEFACE_WORKERS": str(workers),
        "DENSEFACE_DETECTOR": detector,
    }
    log = (work / "server.log").open("wb")
    command = [sys.executable, "-m", "denseface", "serve", "--port", str(port), "--credentials", str(keys)]
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    host = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited: {(work / 'server.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"http://{host}/healthz", timeout=1).json().get("status") == "ok":
                return server, host
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.2)
    server.kill()
    raise SystemExit("the server did not become ready")


async def one_stream(host: str, frames: list[tuple[float, bytes]]) -> StreamRun:
    run = StreamRun()
    sent: dict[int, float] = {}
    async with connect(stream_url(SECRET_ID, SECRET_KEY, host=host), max_size=2**24) as ws:
        started = time.perf_counter()
        index = 0

        async def send_next() -> None:
            nonlocal index
            if index < len(frames):
                t, jpeg = frames[index]
                await ws.send(json.dumps({"Time": t}))
                sent[index] = time.perf_counter()
                await ws.send(jpeg)
                index += 1

        await send_next()
        await send_next()
        done = 0
        while done < len(frames):
            answer = json.loads(await ws.recv())
            frame = int(answer["Frame"])
            run.latencies.append(time.perf_counter() - sent[frame])
            done += 1 + len(answer.get("Skipped", []))
            run.skipped += len(answer.get("Skipped", []))
            if "Error" in answer:
                run.errors += 1
            else:
                run.answers[frame] = answer
            await send_next()
        run.seconds = time.perf_counter() - started
    return run


def peer(analyzer: Analyzer, frames: list[tuple[float, bytes]]) -> tuple[float, list[Any]]:
    tracker = Tracker(analyzer)
    started = time.perf_counter()
    results = [tracker.update(decode_bytes(jpeg).rgb, t) for t, jpeg in frames]
    return len(frames) / (time.perf_counter() - started), results


def quality(run: StreamRun, reference: list[Any]) -> dict[str, Any]:
    with_face = [i for i, r in enumerate(reference) if r.faces and i in run.answers]
    found = [i for i in with_face if run.answers[i]["DenseFaceShapeSet"]]
    gaps = []
    for i in found:
        shape = run.answers[i]["DenseFaceShapeSet"][0]
        points = np.array([[p["X"], p["Y"]] for name in REGION_NAMES for p in shape[name]], np.float64)
        face = reference[i].faces[0].face
        gaps.append(float(np.linalg.norm(points - face.points, axis=1).mean()) / interocular(face.mesh))
    ids = {s["TrackId"] for a in run.answers.values() for s in a["DenseFaceShapeSet"]}
    return {
        "face_where_video_has_one": f"{len(found)}/{len(with_face)}",
        "track_ids": len(ids),
        "deviation_iod": statistics.fmean(gaps) if gaps else float("nan"),
    }


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def row(name: str, run: StreamRun, ref_fps: float) -> str:
    cells = [
        name,
        f"{run.fps():.1f}",
        f"{run.fps() / ref_fps:.2f}",
        f"{1000 * pct(run.latencies, 0.5):.1f}",
        f"{1000 * pct(run.latencies, 0.95):.1f}",
        str(len(run.answers)),
        str(run.skipped),
        str(run.errors),
    ]
    return "| " + " | ".join(cells) + " |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--passes", type=int, default=3, help="times the 72-frame clip is played per stream")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--detector", choices=("thorough", "fast"), default="thorough")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    frames = clip_frames(args.passes)
    analyzer = Analyzer(num_threads=1, options=PipelineOptions(detector=args.detector))
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        server, host = start_server(Path(tmp), args.workers, args.detector)
        try:
            video_fps, reference = peer(analyzer, frames)
            single = asyncio.run(one_stream(host, frames))
            video_fps = max(video_fps, peer(analyzer, frames)[0])  # the fastest of two, around the stream

            async def four() -> list[StreamRun]:
                return list(await asyncio.gather(*(one_stream(host, frames) for _ in range(4))))

            several = asyncio.run(four())
        finally:
            server.terminate()
            server.wait(timeout=30)
    load = tuple((a + b) / 2 for a, b in zip(load, os.getloadavg(), strict=True))
    print(
        f"single_face.mp4 as 640×360 JPEG, {len(frames)} frames per stream, {args.workers} workers,", end=" "
    )
    print(args.detector)
    head = ["run", "answered frames/s", "÷ `denseface video`", "p50 latency ms", "p95 latency ms"]
    head += ["answered", "skipped", "errors"]
    print("| " + " | ".join(head) + " |")
    print("|---|---|---|---|---|---|---|---|")
    peer_row = f"| `denseface video`'s tracker in-process (peer) | {video_fps:.1f} | 1.00 | – | – |"
    print(f"{peer_row} {len(frames)} | 0 | 0 |")
    print(row("1 stream", single, video_fps))
    for k, run in enumerate(several):
        print(row(f"4 streams: stream {k + 1}", run, video_fps))
    total = sum(r.fps() for r in several)
    print(
        f"4 streams together: {total:.1f} answered frames/s; the slowest {min(r.fps() for r in several):.1f}"
    )
    q = quality(single, reference)
    print(
        "1 stream against `denseface video` on the same frames: a face in "
        f"{q['face_where_video_has_one']} answered frames where it has one; {q['track_ids']} TrackId(s); "
        f"points {100 * q['deviation_iod']:.2f}% IOD from its"
    )
    print(f"load average during the run ≈ {load[0]:.1f} (1 min) on {os.cpu_count()} CPUs")
    if args.json:
        result = {
            "video_fps": video_fps,
            "single": {
                "fps": single.fps(),
                "p50": pct(single.latencies, 0.5),
                "p95": pct(single.latencies, 0.95),
            },
            "four": [
                {"fps": r.fps(), "p50": pct(r.latencies, 0.5), "p95": pct(r.latencies, 0.95)} for r in several
            ],
            "quality": q,
            "load": load,
        }
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
