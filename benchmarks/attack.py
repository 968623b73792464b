"""Issue 19's attacks at full size against a real ``denseface serve``, each while a legitimate signed call
is timed, and what held.

    python benchmarks/attack.py [--workers 2] [--seconds 12] [--calls 10] [--scale 1] [--only a,b]

Starts ``denseface serve`` on a free 127.0.0.1 port with its default limits (two keys: the legitimate
one and a second, "flood" key; a metrics token to read the worker restarts) and ``--workers`` workers.
Then, one attack at a time, from a separate process bound to its own loopback address (127.0.0.2 …, so
the per-address limits see a stranger, as on a network), for ``--seconds``:

==================  ===============================================================================
quiet               no attack (the baseline)
stalled-unsigned    120 POSTs with no Authorization announcing 6 MiB, sending 100 bytes, then silence
stalled-known-key   120 TC3 POSTs naming the legitimate key's SecretId (a wrong signature), in its
                    time window, announcing 6 MiB, sending 100 bytes, then silence
idle-connections    1 500 connections that send nothing
unsigned-bodies     48 unsigned 6 MiB bodies at once, sent in full, again and again
big-headers         three 48 MiB headers at once, again and again
scan-bombs          two callers of the flood key sending a progressive JPEG whose one 12-byte scan is
                    repeated 60 000 times (2000², 720 KB)
mode1-flood         the flood key on 12 connections: Mode 1 on a 3000×2668 collage of group photos
==================  ===============================================================================

During each attack the legitimate key makes ``--calls`` sequential AnalyzeDenseLandmarks calls with the
official Python SDK (TC3, a 2-person photo, Mode 0) from 127.0.0.1; each must answer OK with 2 faces.
Memory: the server's ``VmRSS`` (its main process, which holds connections and bodies; the workers
separately), before and at its peak during the attack (sampled every 0.2 s). Held: every call correct,
the slowest ≤ 2 s, the main process grew ≤ 150 MB, no worker restarted, the server still up.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from procstats import descendants, rss_mb

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "robustness"
PHOTO = SHARED / "face_recognition" / "two_people.jpg"
LEGIT_ID, LEGIT_KEY = "AKIDdensefaceATTACKlegit000000000000", "attack-bench-legit-key-0123456789"
FLOOD_ID, FLOOD_KEY = "AKIDdensefaceATTACKflood000000000000", "attack-bench-flood-key-0123456789"
METRICS_TOKEN = "attack-bench-metrics-token-0123456789"
ATTACKS = (
    "quiet", "stalled-unsigned", "stalled-known-key", "idle-connections", "unsigned-bodies",
    "big-headers", "scan-bombs", "mode1-flood",
)  # fmt: skip
SOURCES = {name: f"127.0.0.{i + 2}" for i, name in enumerate(ATTACKS)}
MIB = 1024 * 1024


# ------------------------------------------------------------------------------------------ payloads
def scan_bomb(size: int = 2000, repeats: int = 60_000) -> bytes:
    """A progressive JPEG whose smallest scan (every block an end-of-band: 12 bytes) is repeated."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (128, 128, 128)).save(buffer, "JPEG", progressive=True, quality=80)
    data = buffer.getvalue()
    starts = []
    at = data.find(b"\xff\xda")
    while at != -1:
        starts.append(at)
        at = data.find(b"\xff\xda", at + 2)
    eoi = data.rfind(b"\xff\xd9")
    spans = list(zip(starts, [*starts[1:], eoi], strict=True))
    first, last = min(spans, key=lambda span: span[1] - span[0])
    return data[:eoi] + data[first:last] * repeats + data[eoi:]


def collage(width: int = 3000, height: int = 2668) -> bytes:
    """Group photos from the shared robustness set tiled 3 × 3 into one JPEG (many faces)."""
    from PIL import Image

    names = [
        "deepface/selfie-many-people.jpg", "face_alignment_1adrianb/aflw-test-grid3x3.jpg",
        "vladmandic_face_api/sample1.jpg", "vladmandic_face_api/sample2.jpg",
        "vladmandic_face_api/sample3.jpg", "deepface/couple.jpg", "face_recognition/obama_and_biden.jpg",
        "vladmandic_face_api/sample4.jpg", "vladmandic_face_api/sample5.jpg",
    ]  # fmt: skip
    canvas = Image.new("RGB", (width, height))
    tile_w, tile_h = width // 3, height // 3
    for i, name in enumerate(names):
        with Image.open(SHARED / name) as tile:
            canvas.paste(tile.convert("RGB").resize((tile_w, tile_h)), ((i % 3) * tile_w, (i // 3) * tile_h))
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=85)
    return out.getvalue()


def tc3_post(port: int, secret_id: str, secret_key: str, payload: bytes) -> tuple[str, dict[str, str]]:
    from denseface.rpc import signing

    headers = signing.sign_tc3_request(
        secret_id, secret_key, host=f"127.0.0.1:{port}", action="AnalyzeDenseLandmarks",
        version="2020-03-03", region="ap-guangzhou", timestamp=int(time.time()), payload=payload,
    )  # fmt: skip
    return f"http://127.0.0.1:{port}/", headers


# ------------------------------------------------------------------------------------ attack process
class Attack:
    """One attack's loop, in its own process and event loop, until ``until`` (monotonic)."""

    def __init__(self, name: str, port: int, scale: float, until: float) -> None:
        self.name, self.port, self.scale, self.until = name, port, scale, until
        self.source = SOURCES[name]
        self.stats: dict[str, int] = {"connections": 0, "answers": 0, "closed_by_server": 0, "errors": 0}

    def n(self, count: int) -> int:
        return max(1, round(count * self.scale))

    async def open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port, local_addr=(self.source, 0))
        self.stats["connections"] += 1
        return reader, writer

    async def hold(self, reader: asyncio.StreamReader) -> None:
        """Read what the server sends until it closes or the attack ends."""
        try:
            while time.monotonic() < self.until:
                data = await asyncio.wait_for(reader.read(65536), max(0.01, self.until - time.monotonic()))
                if b"HTTP/1.1" in data:
                    self.stats["answers"] += 1
                if not data:
                    self.stats["closed_by_server"] += 1
                    return
        except (asyncio.TimeoutError, ConnectionError):
            return

    async def stalled(self, head: bytes) -> None:
        while time.monotonic() < self.until:  # a stalled connection the server cut is opened again
            try:
                reader, writer = await self.open()
                writer.write(head + b"A" * 100)
                await writer.drain()
                await self.hold(reader)
                writer.close()
            except OSError:
                self.stats["errors"] += 1
                await asyncio.sleep(0.1)

    async def sender(self, head: bytes, body_size: int) -> None:
        """Send ``head`` and ``body_size`` bytes, read the answer, hang up, and again."""
        chunk = b"A" * MIB
        while time.monotonic() < self.until:
            try:
                reader, writer = await self.open()
                writer.write(head)
                sent = 0
                while sent < body_size and not writer.is_closing():
                    writer.write(chunk[: body_size - sent])
                    sent += min(MIB, body_size - sent)
                    await writer.drain()
                data = await asyncio.wait_for(reader.read(65536), max(0.01, self.until - time.monotonic()))
                self.stats["answers" if b"HTTP/1.1" in data else "closed_by_server"] += 1
                writer.close()
            except (OSError, asyncio.TimeoutError):
                self.stats["closed_by_server"] += 1
                await asyncio.sleep(0.05)

    async def signed_loop(self, payload: bytes) -> None:
        import httpx

        async with httpx.AsyncClient(
            timeout=60, transport=httpx.AsyncHTTPTransport(local_address=self.source)
        ) as http:
            while time.monotonic() < self.until:
                url, headers = tc3_post(self.port, FLOOD_ID, FLOOD_KEY, payload)
                try:
                    response = await http.post(url, content=payload, headers=headers)
                    self.stats["answers"] += 1
                    code = response.json()["Response"].get("Error", {}).get("Code", "OK")
                    self.stats[code] = self.stats.get(code, 0) + 1
                except httpx.HTTPError:
                    self.stats["errors"] += 1

    async def run(self) -> dict[str, int]:
        host = f"Host: 127.0.0.1:{self.port}\r\n"
        six = 6 * MIB if self.scale >= 1 else max(MIB, round(6 * MIB * self.scale))
        jobs: list[Any] = []
        if self.name == "stalled-unsigned":
            head = f"POST / HTTP/1.1\r\n{host}Content-Type: application/json\r\nContent-Length: {six}\r\n\r\n"
            jobs = [self.stalled(head.encode()) for _ in range(self.n(120))]
        elif self.name == "stalled-known-key":
            _, headers = tc3_post(self.port, LEGIT_ID, "not-the-key", b"{}")
            headers["Content-Length"] = str(six)
            head = "POST / HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
            jobs = [self.stalled(head.encode()) for _ in range(self.n(120))]
        elif self.name == "idle-connections":
            jobs = [self.stalled(b"") for _ in range(self.n(1500))]
        elif self.name == "unsigned-bodies":
            head = f"POST / HTTP/1.1\r\n{host}Content-Type: application/json\r\nContent-Length: {six}\r\n\r\n"
            jobs = [self.sender(head.encode(), six) for _ in range(self.n(48))]
        elif self.name == "big-headers":
            head = f"GET /?Action=x HTTP/1.1\r\n{host}X-Big: ".encode()
            jobs = [self.sender(head, round(48 * MIB * min(1.0, self.scale))) for _ in range(self.n(3))]
        elif self.name == "scan-bombs":
            body = json.dumps({"Image": base64.b64encode(scan_bomb()).decode()}).encode()
            jobs = [self.signed_loop(body) for _ in range(self.n(2))]
        elif self.name == "mode1-flood":
            body = json.dumps({"Image": base64.b64encode(collage()).decode(), "Mode": 1}).encode()
            jobs = [self.signed_loop(body) for _ in range(self.n(12))]
        if jobs:
            await asyncio.gather(*jobs)
        return self.stats


def attack_main(name: str, port: int, scale: float, seconds: float) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    stats = asyncio.run(Attack(name, port, scale, time.monotonic() + seconds).run())
    sys.stdout.write(json.dumps(stats) + "\n")


# -------------------------------------------------------------------------------------------- server
def start_server(work: Path, workers: int) -> tuple[subprocess.Popen[bytes], int]:
    import httpx

    from denseface.rpc.credentials import Credential, write_keys_file

    keys = work / "keys.toml"
    write_keys_file(keys, [Credential(LEGIT_ID, LEGIT_KEY), Credential(FLOOD_ID, FLOOD_KEY)])
    env = {**os.environ, "DENSEFACE_CONFIG_DIR": str(work / "config"), "DENSEFACE_WORKERS": str(workers)}
    env["DENSEFACE_METRICS_TOKEN"] = METRICS_TOKEN
    for name in ("DENSEFACE_SECRET_ID", "DENSEFACE_SECRET_KEY", "DENSEFACE_REDIS_URL", "DENSEFACE_HOST"):
        env.pop(name, None)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    log = (work / "server.log").open("wb")
    command = [sys.executable, "-m", "denseface", "serve", "--port", str(port), "--credentials", str(keys)]
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError((work / "server.log").read_text(errors="replace"))


def health(port: int) -> dict[str, Any]:
    import httpx

    auth = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    try:
        return dict(httpx.get(f"http://127.0.0.1:{port}/healthz", headers=auth, timeout=5).json())
    except (httpx.HTTPError, ValueError):
        return {}


def legit_calls(port: int, calls: int) -> list[tuple[str, float]]:
    from tencentcloud.common import credential
    from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile
    from tencentcloud.iai.v20200303 import iai_client, models

    profile = ClientProfile(
        httpProfile=HttpProfile(protocol="http", endpoint=f"127.0.0.1:{port}", reqTimeout=30)
    )
    client = iai_client.IaiClient(credential.Credential(LEGIT_ID, LEGIT_KEY), "ap-guangzhou", profile)
    request = models.AnalyzeDenseLandmarksRequest()
    request.from_json_string(json.dumps({"Image": base64.b64encode(PHOTO.read_bytes()).decode()}))
    results = []
    for _ in range(calls):
        started = time.perf_counter()
        try:
            faces = len(client.AnalyzeDenseLandmarks(request).DenseFaceShapeSet)
            code = "OK" if faces == 2 else f"OK with {faces} faces"
        except TencentCloudSDKException as exc:
            code = str(exc.code)
        results.append((code, time.perf_counter() - started))
        time.sleep(0.2)
    return results


@dataclass
class Row:
    attack: str
    calls_ok: int
    calls: int
    legit_p50_s: float
    legit_max_s: float
    main_rss_before_mb: float
    main_rss_peak_mb: float
    workers_rss_peak_mb: float
    worker_restarts: int
    server_up: bool
    attacker: dict[str, int]

    @property
    def growth_mb(self) -> float:
        return self.main_rss_peak_mb - self.main_rss_before_mb

    @property
    def held(self) -> bool:
        return (
            self.calls_ok == self.calls and self.legit_max_s <= 2.0 and self.growth_mb <= 150
            and self.worker_restarts == 0 and self.server_up
        )  # fmt: skip


def measure(name: str, proc: subprocess.Popen[bytes], port: int, args: argparse.Namespace) -> Row:
    before_restarts = int(health(port).get("worker_restarts", 0))
    before = rss_mb(proc.pid)
    peak = {"main": before, "workers": 0.0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak["main"] = max(peak["main"], rss_mb(proc.pid))
            peak["workers"] = max(peak["workers"], sum(rss_mb(p) for p in descendants(proc.pid)))
            stop.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    attacker = None
    if name != "quiet":
        command = [sys.executable, __file__, "--attack", name, "--port", str(port)]
        command += ["--scale", str(args.scale), "--seconds", str(args.seconds)]
        attacker = subprocess.Popen(command, stdout=subprocess.PIPE)
        time.sleep(min(3.0, args.seconds / 4))  # the attack is under way
    results = legit_calls(port, args.calls)
    stats: dict[str, int] = {}
    if attacker is not None:
        out, _ = attacker.communicate(timeout=args.seconds + 60)
        stats = json.loads(out.decode().strip().splitlines()[-1]) if out.strip() else {"failed": 1}
    stop.set()
    sampler.join()
    seconds = sorted(s for _, s in results)
    after = health(port)
    return Row(
        attack=name,
        calls_ok=sum(code == "OK" for code, _ in results),
        calls=len(results),
        legit_p50_s=seconds[len(seconds) // 2],
        legit_max_s=seconds[-1],
        main_rss_before_mb=before,
        main_rss_peak_mb=peak["main"],
        workers_rss_peak_mb=peak["workers"],
        worker_restarts=int(after.get("worker_restarts", -1)) - before_restarts,
        server_up=proc.poll() is None and after.get("status") == "ok",
        attacker=stats,
    )


def table(rows: list[Row]) -> str:
    lines = [
        "| attack | legit calls OK | legit p50 / max (s) | server RSS before → peak (MB) | growth (MB) "
        "| worker restarts | held |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.attack} | {r.calls_ok}/{r.calls} | {r.legit_p50_s:.2f} / {r.legit_max_s:.2f} "
            f"| {r.main_rss_before_mb:.0f} → {r.main_rss_peak_mb:.0f} | {r.growth_mb:+.0f} "
            f"| {r.worker_restarts} | {'yes' if r.held else 'NO'} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=12.0, help="each attack's duration")
    parser.add_argument("--calls", type=int, default=10, help="legitimate calls during each attack")
    parser.add_argument("--scale", type=float, default=1.0, help="attack sizes × this (smoke runs)")
    parser.add_argument("--only", default=",".join(ATTACKS), help="comma-separated attacks")
    parser.add_argument("--json", type=Path, help="write the rows here")
    parser.add_argument("--attack", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.attack:
        attack_main(args.attack, args.port, args.scale, args.seconds)
        return 0
    names = [n for n in args.only.split(",") if n]
    unknown = set(names) - set(ATTACKS)
    if unknown:
        parser.error(f"unknown attack(s): {', '.join(sorted(unknown))}")
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="denseface-attack-") as tmp:
        proc, port = start_server(Path(tmp), args.workers)
        rows = []
        try:
            for name in names:
                rows.append(measure(name, proc, port, args))
                print(f"{name}: {asdict(rows[-1])}", file=sys.stderr, flush=True)
                time.sleep(2)  # the server closes what the attack left
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        log = (Path(tmp) / "server.log").read_text(errors="replace")
    print(
        f"denseface serve, {args.workers} workers, default limits; {args.calls} legit calls per attack; "
        f"{os.cpu_count()} CPUs, load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    )
    print(table(rows))
    print(f"Traceback in the server log: {'yes' if 'Traceback' in log else 'no'}")
    if args.json:
        args.json.write_text(json.dumps([{**asdict(r), "held": r.held} for r in rows], indent=2))
    return 0 if all(r.held for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
