"""HTTP load on a real ``denseface serve`` beside the library alone, so the HTTP overhead shows as a ratio.

    python benchmarks/http_load.py [--duration 15] [--levels 1,8,16,32] [--soak 10000] [--json OUT]
    python benchmarks/http_load.py --metering [--stores off,sqlite,redis] [--levels 8] [--duration 15]

Starts ``denseface serve`` on a free 127.0.0.1 port (temporary credentials: one key, QPS high enough to
keep the limiter out of the way), waits for ``/healthz`` and drives it from a separate process (an
``httpx.AsyncClient`` loop): TC3-signed POSTs, each freshly signed, with a 512² single-face JPEG (q90)
as base64. Errors: HTTP status ≠ 200, transport errors, ``Response.Error``. The server is its main
process (HTTP, protocol) and its worker processes (inference): CPU time is counted for each, and memory
as the ``VmRSS`` of all of them added up (shared pages counted once per process: an upper bound) and as
their PSS; both are read before/after each level, and ``--soak N`` samples them every 1000 requests at
c=16. The hand-off to the workers (time of a job outside the worker's own work: sockets, wake-ups) is
read from ``/metrics``. The library rows time ``Analyzer.analyze`` on the same JPEG bytes (decode
included) here, on 1 and 2 threads (an Analyzer each).

``--metering`` measures the cost of the usage store instead (see ``benchmarks/metering.py``): the same
load on a server per store — ``off`` (no store: every call admitted, nothing counted), ``sqlite``
(the default) and ``redis`` (a ``redis-server`` started here) — one after the other in the same run,
with the photo and with a request that passes the account checks and fails at once (no image, so no
inference: the metering is most of its cost); differences against ``off``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from procstats import cpu_s, rss_mb, total_pss_mb, total_rss_mb, worker_cpu_s

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
PORTRAIT = SHARED / "landmarks" / "images" / "eos_lfpw__image_0001.png"
SECRET_ID = "AKIDdensefaceBENCH000000000000000000"
SECRET_KEY = "denseface-bench-secret-key-0123456789ab"  # a throwaway local key
METRICS_TOKEN = "bench-metrics-token-0123456789"
METRICS_AUTH = {"Authorization": f"Bearer {METRICS_TOKEN}"}
ACTION, VERSION, REGION = "AnalyzeDenseLandmarks", "2020-03-03", "ap-guangzhou"
SOAK_CONCURRENCY = 16
TARGETS = (
    "≥ 100 req/s at c=16 with p99 ≤ 150 ms; server CPU per request (main + workers) ≤ 1.15× the library's; "
    "soak: 0 errors, flat memory, ≤ 400 MB in all"
)


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


@dataclass
class LibraryResult:
    threads: int
    calls: int
    per_s: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_call: float  # this process's CPU time (user + sys) per call


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


# ------------------------------------------------------------------------------------------- library
def run_library(jpeg: bytes, threads: int, duration: float, detector: str) -> LibraryResult:
    """``Analyzer.analyze`` on the JPEG bytes (decode included) on ``threads`` threads, an Analyzer each."""
    from denseface.api import Analyzer
    from denseface.engine.pipeline import PipelineOptions

    analyzers = [Analyzer(options=PipelineOptions(detector=detector)) for _ in range(threads)]
    _ = [analyzer.analyze(jpeg) for analyzer in analyzers]  # warm-up: first invokes allocate
    latencies: list[list[float]] = [[] for _ in range(threads)]
    barrier = threading.Barrier(threads + 1)
    end = [0.0]

    def loop(index: int) -> None:
        barrier.wait()
        while time.perf_counter() < end[0]:
            t0 = time.perf_counter()
            faces = analyzers[index].analyze(jpeg)
            latencies[index].append(time.perf_counter() - t0)
            if len(faces) != 1:
                raise RuntimeError(f"expected one face, got {len(faces)}")

    workers = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(threads)]
    for worker in workers:
        worker.start()
    cpu0, started = cpu_s(os.getpid()), time.perf_counter()
    end[0] = started + duration
    barrier.wait()
    for worker in workers:
        worker.join()
    elapsed, cpu = time.perf_counter() - started, cpu_s(os.getpid()) - cpu0
    ordered = sorted(t for per_thread in latencies for t in per_thread)
    return LibraryResult(
        threads=threads,
        calls=len(ordered),
        per_s=round(len(ordered) / elapsed, 2),
        p50_ms=pct_ms(ordered, 50),
        p99_ms=pct_ms(ordered, 99),
        cpu_ms_per_call=round(cpu * 1000 / max(1, len(ordered)), 1),
    )


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


# ------------------------------------------------------------------------------------------- report
def ratios(report: dict[str, Any]) -> dict[str, float]:
    """HTTP latency at c=1 over library latency; HTTP req/s at c=8/16 over library 2-thread calls/s;
    server CPU per request (main + workers) over the library's."""
    library = {row["threads"]: row for row in report.get("library", [])}
    levels = {row["concurrency"]: row for row in report["levels"]}
    out: dict[str, float] = {}
    if 1 in library and 1 in levels and library[1]["p50_ms"] > 0:
        out["c1_p50_latency_over_library"] = round(levels[1]["p50_ms"] / library[1]["p50_ms"], 3)
    for level in (8, 16):
        if 2 in library and level in levels and library[2]["per_s"] > 0:
            out[f"c{level}_throughput_over_library_2t"] = round(
                levels[level]["req_per_s"] / library[2]["per_s"], 3
            )
    for level, threads in ((1, 1), (8, 2), (16, 2)):  # CPU per request: far less sensitive to a busy box
        if threads in library and level in levels and library[threads]["cpu_ms_per_call"] > 0:
            cpu = levels[level]["server_cpu_ms_per_req"] / library[threads]["cpu_ms_per_call"]
            out[f"c{level}_server_cpu_over_library_{threads}t_cpu"] = round(cpu, 3)
    return out


def markdown(report: dict[str, Any]) -> str:
    def row(*cells: object) -> str:
        return "| " + " | ".join(str(c) for c in cells) + " |"

    lines = [
        f"HTTP load: 512² 1-face JPEG ({report['jpeg_bytes']} B, base64), TC3-signed POST, server workers: "
        f"{report['server_workers']}, detector {report.get('detector')}, {report['cpus']} CPUs shared with "
        "the load generator",
        "",
        "| concurrency | requests | req/s | p50 ms | p90 ms | p99 ms | max ms | errors | server CPU ms/req "
        "(main + workers) | hand-off ms/job | client CPU ms/req | RSS MB, all processes, before → after "
        "(main) | PSS MB | load avg 1 min |",
        row(*["---:"] * 8, "---", "---:", "---:", "---", "---:", "---:"),
    ]
    for r in report["levels"]:
        rss = f"{r['rss_before_mb']:.0f} → {r['rss_after_mb']:.0f} ({r['main_rss_after_mb']:.0f})"
        stats = [f"{r[k]:.1f}" for k in ("req_per_s", "p50_ms", "p90_ms", "p99_ms", "max_ms")]
        split = f"{r['main_cpu_ms_per_req']:.1f} + {r['workers_cpu_ms_per_req']:.1f}"
        cpu = f"{r['server_cpu_ms_per_req']:.1f} ({split})"
        handoff, client = f"{r['handoff_ms_per_job']:.2f}", f"{r['client_cpu_ms_per_req']:.1f}"
        load, pss = f"{r['loadavg_after']:.2f}", f"{r['pss_after_mb']:.0f}"
        lines.append(
            row(r["concurrency"], r["requests"], *stats, r["errors"], cpu, handoff, client, rss, pss, load)
        )
    if report.get("library"):
        lib_head = ("library: `Analyzer.analyze`, decode included", "calls", "calls/s", "p50 ms", "p99 ms")
        lines += ["", row(*lib_head, "CPU ms/call"), row("---", *["---:"] * 5)]
        for r in report["library"]:
            stats = [f"{r[k]:.1f}" for k in ("per_s", "p50_ms", "p99_ms", "cpu_ms_per_call")]
            lines.append(row(f"{r['threads']} thread(s), an Analyzer each", r["calls"], *stats))
    lines += ["", *(f"- {name}: {value:.3f}" for name, value in report.get("ratios", {}).items())]
    if report.get("soak"):
        s = report["soak"]
        trail = ", ".join(f"{k}: {v:.0f}" for k, v in s["rss_samples_mb"])
        lines.append(
            f"\nSoak: {s['requests']} requests at c={s['concurrency']}, {s['req_per_s']:.1f} req/s, "
            f"p99 {s['p99_ms']:.1f} ms, {s['errors']} errors; RSS MB of all the server's processes by "
            f"requests done: {trail}; PSS at the end {s['pss_after_mb']:.0f} MB"
        )
    errors = {f"c={r['concurrency']}": r["error_codes"] for r in report["levels"] if r["error_codes"]}
    if errors:
        lines.append(f"\nError codes: {errors}")
    lines.append(f"\nTargets: {TARGETS}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add = parser.add_argument
    add("--duration", type=float, default=15.0, help="seconds per level (default 15)")
    add("--requests", type=int, default=None, help="requests per level instead of a duration")
    add("--levels", default="1,8,16,32", help="comma-separated concurrency levels (default 1,8,16,32)")
    add("--soak", type=int, default=0, help=f"N requests at c={SOAK_CONCURRENCY}, RSS every 1000")
    add("--library-duration", type=float, default=10.0, help="seconds per library run (default 10)")
    add("--no-library", action="store_true", help="skip the library-only runs")
    add("--workers", type=int, default=None, help="server worker processes (default: cores)")
    add(
        "--detector",
        choices=("thorough", "fast", "exhaustive"),
        default="thorough",
        help="face finding, both sides",
    )
    add("--warmup", type=int, default=20, help="unmeasured requests before the levels (default 20)")
    add("--json", type=Path, default=None, help="also write the results as JSON here")
    add("--metering", action="store_true", help="the usage store's cost: one server per --stores")
    add("--stores", default="off,sqlite,redis", help="with --metering (default off,sqlite,redis)")
    add("--rounds", type=int, default=5, help="with --metering: interleaved rounds (default 5)")
    args = parser.parse_args(argv)
    levels = [part.strip() for part in args.levels.split(",") if part.strip()]
    if not levels or not all(part.isdigit() and int(part) > 0 for part in levels):
        parser.error("--levels must be comma-separated positive integers")
    args.levels = [int(part) for part in levels]
    if args.duration <= 0 or (args.requests is not None and args.requests < 1) or args.soak < 0:
        parser.error("--duration, --requests and --soak must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    jpeg = make_jpeg()
    image_b64 = base64.b64encode(jpeg).decode("ascii")
    if args.metering:
        import metering

        return metering.main(args, image_b64)
    report: dict[str, Any] = {"jpeg_bytes": len(jpeg), "cpus": os.cpu_count(), "levels": []}
    report["detector"] = args.detector
    if not args.no_library:
        report["library"] = [
            asdict(run_library(jpeg, n, args.library_duration, args.detector)) for n in (1, 2)
        ]
        print(f"library: {report['library']}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="denseface-load-") as tmp:
        proc, port, log_path, health = start_server(Path(tmp), args.workers, args.detector)
        try:
            report["server_workers"] = health.get("workers")
            with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as client:

                def load(concurrency: int, **kw: Any) -> LoadResult:
                    spec = LoadSpec(port, proc.pid, concurrency, image_b64, **kw)
                    before, main0, workers0 = total_rss_mb(proc.pid), cpu_s(proc.pid), worker_cpu_s(proc.pid)
                    handoff0, jobs0 = worker_counters(port)
                    result = client.submit(run_load, spec).result(timeout=3600)
                    n = max(1, result.requests)
                    main_ms = (cpu_s(proc.pid) - main0) * 1000 / n
                    workers_ms = (worker_cpu_s(proc.pid) - workers0) * 1000 / n
                    handoff1, jobs1 = worker_counters(port)
                    result.handoff_ms_per_job = round(
                        (handoff1 - handoff0) * 1000 / max(1.0, jobs1 - jobs0), 3
                    )
                    result.main_cpu_ms_per_req, result.workers_cpu_ms_per_req = (
                        round(main_ms, 2),
                        round(workers_ms, 1),
                    )
                    result.server_cpu_ms_per_req = round(main_ms + workers_ms, 1)
                    result.rss_before_mb, result.rss_after_mb = (
                        round(before, 1),
                        round(total_rss_mb(proc.pid), 1),
                    )
                    result.main_rss_after_mb = round(rss_mb(proc.pid), 1)
                    result.pss_after_mb = round(total_pss_mb(proc.pid), 1)
                    result.loadavg_after = round(os.getloadavg()[0], 2)
                    print(f"c={concurrency}: {asdict(result)}", file=sys.stderr)
                    return result

                if args.warmup:
                    load(2, requests=args.warmup)
                for level in args.levels:
                    kw = {"requests": args.requests} if args.requests else {"duration": args.duration}
                    report["levels"].append(asdict(load(level, **kw)))
                if args.soak:
                    report["soak"] = asdict(load(SOAK_CONCURRENCY, requests=args.soak, sample_every=1000))
        finally:
            stop_server(proc)
            if proc.returncode not in (0, -15):
                print(log_path.read_text(errors="replace")[-4000:], file=sys.stderr)
    report["ratios"] = ratios(report)
    print(markdown(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
