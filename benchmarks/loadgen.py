"""The pieces shared by the HTTP benchmarks (``http_load.py``, ``metering.py``, ``handoff.py``): the
512² portrait JPEG, a ``denseface serve`` on a free loopback port with a throwaway key, and the load
generator (a child process: TC3-signed POSTs at a fixed concurrency, latencies and error codes)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from procstats import total_rss_mb

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
PORTRAIT = SHARED / "landmarks" / "images" / "eos_lfpw__image_0001.png"
SECRET_ID = "AKIDdensefaceBENCH000000000000000000"
SECRET_KEY = "denseface-bench-secret-key-0123456789ab"  # a throwaway local key
METRICS_TOKEN = "bench-metrics-token-0123456789"
METRICS_AUTH = {"Authorization": f"Bearer {METRICS_TOKEN}"}
ACTION, VERSION, REGION = "AnalyzeDenseLandmarks", "2020-03-03", "ap-guangzhou"


@dataclass
class LoadSpec:
    port: int
    server_pid: int
    concurrency: int
    image_b64: str
    duration: float | None = None  # seconds, or
    requests: int | None = None  # a fixed number of requests
    sample_every: int = 0  # > 0: sample the server's total RSS every this many completed requests
    expect: str = "OK"  # the code a good answer has ("InvalidParameterValue.ImageEmpty" for payload {})


@dataclass
class LoadResult:
    concurrency: int
    requests: int
    errors: int
    client_cpu_ms_per_req: float  # the load generator's own CPU time per request (it shares the box)
    req_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    error_codes: dict[str, int] = field(default_factory=dict)
    rss_samples_mb: list[tuple[int, float]] = field(default_factory=list)
    rss_before_mb: float = 0.0
    rss_after_mb: float = 0.0
    loadavg_after: float = 0.0  # 1-minute load average of the box: other work skews the numbers
    server_cpu_ms_per_req: float = 0.0  # main process + workers: CPU time (user + sys) per request
    main_cpu_ms_per_req: float = 0.0  # the main process alone (HTTP, protocol, hand-off)
    workers_cpu_ms_per_req: float = 0.0  # the worker processes (base64, checks, decode, models, JSON)
    main_rss_after_mb: float = 0.0
    pss_after_mb: float = 0.0  # proportional set size of main + workers (shared pages split)
    handoff_ms_per_job: float = 0.0  # from /metrics: a job's time outside the worker's own work


def pct_ms(seconds: list[float], q: float) -> float:
    """Linear-interpolated percentile ``q`` (0–100) of sorted durations in seconds, in ms; 0 for none."""
    if not seconds:
        return 0.0
    pos = (len(seconds) - 1) * q / 100.0
    low, high = int(pos), min(int(pos) + 1, len(seconds) - 1)
    return round((seconds[low] + (seconds[high] - seconds[low]) * (pos - low)) * 1000, 1)


def worker_counters(port: int) -> tuple[float, float]:
    """``denseface_worker_handoff_seconds_total`` and ``denseface_worker_jobs_total`` from ``/metrics``."""
    import httpx

    values = {"denseface_worker_handoff_seconds_total": 0.0, "denseface_worker_jobs_total": 0.0}
    for line in httpx.get(
        f"http://127.0.0.1:{port}/metrics", headers=METRICS_AUTH, timeout=5
    ).text.splitlines():
        name, _, value = line.partition(" ")
        if name in values:
            values[name] = float(value)
    return values["denseface_worker_handoff_seconds_total"], values["denseface_worker_jobs_total"]


def make_jpeg() -> bytes:
    """The 512² single-face JPEG (q90): the shared portrait, square-cropped and resized."""
    from PIL import Image

    src = Image.open(PORTRAIT).convert("RGB")
    side = min(src.size)
    top = min(64, src.height - side)
    portrait = src.crop((0, top, side, top + side)).resize((512, 512), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    portrait.save(buf, "JPEG", quality=90)
    return buf.getvalue()


# ------------------------------------------------------------------------------ load generator (child)
async def _load(spec: LoadSpec) -> LoadResult:
    import httpx

    from denseface.rpc.signing import sign_tc3_request

    host = f"127.0.0.1:{spec.port}"
    payload = json.dumps({"Image": spec.image_b64} if spec.image_b64 else {}).encode()
    sign = partial(sign_tc3_request, SECRET_ID, SECRET_KEY, host=host, payload=payload)
    sign = partial(sign, action=ACTION, version=VERSION, region=REGION)
    latencies: list[float] = []
    codes: dict[str, int] = {}
    samples: list[tuple[int, float]] = [(0, total_rss_mb(spec.server_pid))]
    issued, started, cpu0 = 0, time.perf_counter(), time.process_time()
    end = started + spec.duration if spec.duration is not None else float("inf")

    def take_ticket() -> bool:
        nonlocal issued
        more = issued < spec.requests if spec.requests is not None else time.perf_counter() < end
        issued += more
        return more

    async def worker(client: httpx.AsyncClient) -> None:
        while take_ticket():
            headers = sign(timestamp=int(time.time()))  # freshly signed, a current timestamp
            t0 = time.perf_counter()
            code = "OK"
            try:
                response = await client.post("/", content=payload, headers=headers)
                if response.status_code != 200:
                    code = f"HTTP {response.status_code}"
                else:
                    body = response.json()["Response"]
                    if "Error" in body:
                        code = str(body["Error"]["Code"])
                    elif not body.get("DenseFaceShapeSet"):
                        code = "NoShapes"
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                code = type(exc).__name__
            latencies.append(time.perf_counter() - t0)
            if code != spec.expect:
                codes[code] = codes.get(code, 0) + 1
            done = len(latencies)
            if spec.sample_every and done % spec.sample_every == 0:
                samples.append((done, total_rss_mb(spec.server_pid)))

    limits = httpx.Limits(max_connections=spec.concurrency, max_keepalive_connections=spec.concurrency)
    async with httpx.AsyncClient(base_url=f"http://{host}", limits=limits, timeout=60.0) as client:
        await asyncio.gather(*(worker(client) for _ in range(spec.concurrency)))
    elapsed, ordered, n = time.perf_counter() - started, sorted(latencies), len(latencies)
    return LoadResult(
        concurrency=spec.concurrency,
        requests=n,
        errors=sum(codes.values()),
        client_cpu_ms_per_req=round((time.process_time() - cpu0) * 1000 / max(1, n), 1),
        req_per_s=round(n / elapsed, 2) if elapsed > 0 else 0.0,
        **{f"p{q}_ms": pct_ms(ordered, q) for q in (50, 90, 99)},
        max_ms=pct_ms(ordered, 100),
        error_codes=codes,
        rss_samples_mb=[(k, round(v, 1)) for k, v in samples] if spec.sample_every else [],
    )


def run_load(spec: LoadSpec) -> LoadResult:
    """Entry point of the load-generator process."""
    return asyncio.run(_load(spec))


# -------------------------------------------------------------------------------------------- server
def start_server(
    work: Path, workers: int | None, detector: str, store: str = "sqlite", redis_url: str | None = None
) -> tuple[subprocess.Popen[bytes], int, Path, dict[str, Any]]:
    """``denseface serve`` on a free loopback port; returns once ``/healthz`` answers 200 (and its body).
    ``store``: ``sqlite`` (the default), ``redis`` (at ``redis_url``) or ``off`` (benchmarks/metering.py)."""
    import httpx

    creds = work / "credentials.toml"
    creds.write_text(f'[[keys]]\nsecret_id = "{SECRET_ID}"\nsecret_key = "{SECRET_KEY}"\nqps = 100000\n')
    creds.chmod(0o600)  # the server refuses a keys file others may read
    env = {
        **os.environ,
        "DENSEFACE_CONFIG_DIR": str(work / "config"),
        "DENSEFACE_METRICS_TOKEN": METRICS_TOKEN,
    }
    for name in ("DENSEFACE_SECRET_ID", "DENSEFACE_SECRET_KEY", "DENSEFACE_CREDENTIALS", "DENSEFACE_HOST"):
        env.pop(name, None)
    env.pop("DENSEFACE_REDIS_URL", None)
    if store == "redis" and redis_url:
        env["DENSEFACE_REDIS_URL"] = redis_url
    if workers is not None:
        env["DENSEFACE_WORKERS"] = str(workers)
    env["DENSEFACE_DETECTOR"] = detector
    with socket.socket() as sock:  # a free loopback port
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    log_path = work / "server.log"
    command = [sys.executable, "-m", "denseface", "serve", "--host", "127.0.0.1", "--port", str(port)]
    if store == "off":
        command = [sys.executable, str(Path(__file__).with_name("metering.py")), "--serve", str(port)]
    with log_path.open("wb") as log:
        proc = subprocess.Popen([*command, "--credentials", str(creds)], env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            health = httpx.get(f"http://127.0.0.1:{port}/healthz", headers=METRICS_AUTH, timeout=1)
            if health.status_code == 200:
                return proc, port, log_path, dict(health.json())
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop_server(proc)
    raise RuntimeError(f"denseface serve did not become ready:\n{log_path.read_text(errors='replace')}")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
