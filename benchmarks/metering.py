"""The usage store's cost per request, for ``http_load.py --metering`` (run that; this module is its part).

A server per store of ``--stores``, all up at once: ``off`` (this module's ``--serve``: the product with
a store that admits every call and counts nothing), ``sqlite`` (``denseface serve`` as shipped) and
``redis`` (``denseface serve`` with ``DENSEFACE_REDIS_URL`` on a ``redis-server`` started here, no
persistence). ``--rounds`` rounds, each running every level of ``--levels`` for ``--duration / rounds`` s
on each server in turn (the order rotating), so a changing load on the shared machine meets every store
alike. Two requests: ``photo`` (the 512² portrait: the real work) and ``empty`` (no image: admitted,
then ``InvalidParameterValue.ImageEmpty`` without inference, so the metering is a large part of it). Per
row: req/s, p50/p99, the server main process's CPU ms per request, redis-server's CPU ms per request,
and the wall time the server waited for the store per request (``denseface_store_seconds_total`` in
/metrics); then the differences against ``off`` at the same level and request.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import loadgen
from procstats import cpu_s

EMPTY_CODE = "InvalidParameterValue.ImageEmpty"


class Unmetered:
    """A store that admits every call and counts nothing: the baseline without metering."""

    name = "off"

    async def start(self) -> None: ...

    async def ping(self) -> None: ...

    async def admit(self, admission: Any, *, day: str) -> str:
        return "OK"

    async def settle(
        self, secret_id: str, request_id: str, action: str, code: str, *, day: str, charge: bool | None = None
    ) -> bool:
        return True

    async def record(self, secret_id: str, action: str, code: str, *, day: str) -> None: ...

    async def remember_nonce(self, secret_id: str, nonce: str, ttl: float) -> bool:
        return True

    async def used(self, secret_ids: list[str]) -> dict[str, int]:
        return {}

    async def usage(self, secret_id: str | None = None, since: str | None = None) -> list[Any]:
        return []

    async def close(self) -> None: ...


def serve_unmetered(port: int, credentials: Path) -> None:
    import uvicorn

    from denseface.server.edge import uvicorn_options
    from denseface.server.run import build_app, connection_limits
    from denseface.server.settings import Settings

    settings = Settings.from_env(host="127.0.0.1", port=port, credentials=credentials)
    app, _, _ = build_app(settings, accounts=Unmetered())  # type: ignore[arg-type]
    options = uvicorn_options(connection_limits(settings))  # the same HTTP layer as `denseface serve`
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", server_header=False, **options)


def start_redis(work: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (make test installs it); leave redis out of --stores")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(work), "--save", ""]
    proc = subprocess.Popen(
        [*args, "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"redis://127.0.0.1:{port}/0"
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")


def store_seconds(port: int) -> float:
    import httpx

    for line in httpx.get(
        f"http://127.0.0.1:{port}/metrics", headers=loadgen.METRICS_AUTH, timeout=5
    ).text.splitlines():
        if line.startswith("denseface_store_seconds_total "):
            return float(line.split()[1])
    return 0.0


@dataclass
class Server:
    store: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    redis: subprocess.Popen[bytes] | None = None


def start(args: argparse.Namespace, store: str, work: Path) -> Server:
    work.mkdir()
    redis, url = start_redis(work) if store == "redis" else (None, None)
    proc, port, log_path, _ = loadgen.start_server(work, args.workers, args.detector, store, url)
    return Server(store, proc, port, log_path, redis)


def stop(server: Server) -> None:
    loadgen.stop_server(server.proc)
    if server.proc.returncode not in (0, -15):
        print(server.log_path.read_text(errors="replace")[-4000:], file=sys.stderr)
    if server.redis is not None:
        server.redis.terminate()
        server.redis.wait(timeout=10)


def one_load(client: Any, server: Server, spec: loadgen.LoadSpec) -> dict[str, Any]:
    """One load on ``server``: its result plus main/redis CPU seconds and store seconds it cost."""
    main0, store0 = cpu_s(server.proc.pid), store_seconds(server.port)
    redis0 = cpu_s(server.redis.pid) if server.redis else 0.0
    started = time.perf_counter()
    result = asdict(client.submit(loadgen.run_load, spec).result(timeout=3600))
    result["elapsed_s"] = time.perf_counter() - started
    result["main_cpu_s"] = cpu_s(server.proc.pid) - main0
    result["redis_cpu_s"] = cpu_s(server.redis.pid) - redis0 if server.redis else 0.0
    result["store_s"] = store_seconds(server.port) - store0
    return result


def combine(store: str, request: str, level: int, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The rounds of one (store, request, level): totals per request; the median of the rounds' p50/p99."""
    n = max(1, sum(r["requests"] for r in runs))
    return {
        "store": store,
        "request": request,
        "concurrency": level,
        "rounds": len(runs),
        "requests": sum(r["requests"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
        "error_codes": [r["error_codes"] for r in runs if r["error_codes"]],
        "req_per_s": round(n / max(1e-9, sum(r["elapsed_s"] for r in runs)), 2),
        "p50_ms": statistics.median(r["p50_ms"] for r in runs),
        "p99_ms": statistics.median(r["p99_ms"] for r in runs),
        "store_ms_per_req": round(sum(r["store_s"] for r in runs) * 1000 / n, 3),
        "main_cpu_ms_per_req": round(sum(r["main_cpu_s"] for r in runs) * 1000 / n, 3),
        "redis_cpu_ms_per_req": round(sum(r["redis_cpu_s"] for r in runs) * 1000 / n, 3),
        "loadavg_after": round(os.getloadavg()[0], 2),
    }


def measure(args: argparse.Namespace, image_b64: str, stores: list[str], work: Path) -> list[dict[str, Any]]:
    """All the stores' servers up at once; each round runs every (level, request) on each server in turn
    (the order rotating), so a load that changes on the shared machine meets every store alike."""
    servers = [start(args, store, work / store) for store in stores]
    runs: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as client:
            for server in servers:
                warm = loadgen.LoadSpec(server.port, server.proc.pid, 2, image_b64, requests=args.warmup)
                client.submit(loadgen.run_load, warm).result(timeout=600)
            for round_ in range(args.rounds):
                for level in args.levels:
                    for request, b64, expect in (("photo", image_b64, "OK"), ("empty", "", EMPTY_CODE)):
                        for server in servers[round_ % len(servers) :] + servers[: round_ % len(servers)]:
                            spec = loadgen.LoadSpec(server.port, server.proc.pid, level, b64, expect=expect)
                            if args.requests:
                                spec.requests = args.requests
                            else:
                                spec.duration = args.duration / args.rounds
                            run = one_load(client, server, spec)
                            runs.setdefault((server.store, request, level), []).append(run)
                print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        for server in servers:
            stop(server)
    return [combine(store, request, level, found) for (store, request, level), found in runs.items()]


def markdown(rows: list[dict[str, Any]], cpus: int | None) -> str:
    def row(*cells: object) -> str:
        return "| " + " | ".join(str(c) for c in cells) + " |"

    base = {(r["request"], r["concurrency"]): r for r in rows if r["store"] == "off"}
    head = "| store | request | c | requests | errors | req/s | p50 ms | p99 ms | store wait ms/req | "
    head += "main CPU ms/req | redis CPU ms/req | Δ p50 ms vs off | Δ main+redis CPU ms/req vs off | load |"
    lines = [f"Metering cost ({cpus} CPUs shared with the load generator and the store)", "", head]
    lines.append(row("---", "---", *["---:"] * 12))
    for r in rows:
        off = base.get((r["request"], r["concurrency"]))
        dp50 = f"{r['p50_ms'] - off['p50_ms']:+.2f}" if off and r is not off else "—"
        cpu = r["main_cpu_ms_per_req"] + r["redis_cpu_ms_per_req"]
        dcpu = f"{cpu - off['main_cpu_ms_per_req']:+.3f}" if off and r is not off else "—"
        stats = [f"{r[k]:.1f}" for k in ("req_per_s", "p50_ms", "p99_ms")]
        costs = [f"{r[k]:.3f}" for k in ("store_ms_per_req", "main_cpu_ms_per_req", "redis_cpu_ms_per_req")]
        cells = [r["store"], r["request"], r["concurrency"], r["requests"], r["errors"], *stats, *costs]
        lines.append(row(*cells, dp50, dcpu, f"{r['loadavg_after']:.2f}"))
    rounds = rows[0]["rounds"] if rows else 0
    lines.append(f"\n{rounds} interleaved rounds; p50/p99: medians of the rounds'; load: 1-minute average")
    return "\n".join(lines)


def main(args: argparse.Namespace, image_b64: str) -> int:
    import json

    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    if not stores or set(stores) - {"off", "sqlite", "redis"}:
        raise SystemExit("--stores: a comma-separated list of off, sqlite, redis")
    with tempfile.TemporaryDirectory(prefix="denseface-metering-") as tmp:
        rows = measure(args, image_b64, stores, Path(tmp))
    order = {store: i for i, store in enumerate(stores)}
    rows.sort(key=lambda r: (r["concurrency"], r["request"] != "photo", order[r["store"]]))
    print(markdown(rows, os.cpu_count()))
    if args.json is not None:
        args.json.write_text(json.dumps({"metering": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    # started by loadgen.start_server(store="off"): --serve PORT --credentials FILE
    if len(sys.argv) == 5 and sys.argv[1] == "--serve" and sys.argv[3] == "--credentials":
        serve_unmetered(int(sys.argv[2]), Path(sys.argv[4]))
        sys.exit(0)
    sys.exit("run: python benchmarks/http_load.py --metering")
