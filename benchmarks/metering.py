"""The usage store's cost per request, for ``http_load.py --metering`` (run that; this module is its part).

For each store of ``--stores`` in turn, in one run: a server (``off``: this module's ``--serve``, the
product with a store that admits every call and counts nothing; ``sqlite``: ``denseface serve`` as
shipped; ``redis``: ``denseface serve`` with ``DENSEFACE_REDIS_URL`` on a ``redis-server`` started here,
no persistence), a warm-up, then each level of ``--levels`` for ``--duration`` s with two requests:
``photo`` (the 512² portrait: the real work) and ``empty`` (no image: admitted, then
``InvalidParameterValue.ImageEmpty`` without inference, so the metering is a large part of it). Per row:
req/s, p50/p99, the server main process's CPU ms per request, redis-server's CPU ms per request, and the
wall time the server waited for the store per request (``denseface_store_seconds_total`` in /metrics);
then each store's differences against ``off`` at the same level and request.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import http_load
from procstats import cpu_s

EMPTY_CODE = "InvalidParameterValue.ImageEmpty"


class Unmetered:
    """A store that admits every call and counts nothing: the baseline without metering."""

    name = "off"

    async def start(self) -> None: ...

    async def admit(self, admission: Any, *, day: str) -> str:
        return "OK"

    async def settle(self, secret_id: str, request_id: str, action: str, code: str, *, day: str) -> bool:
        return True

    async def record(self, secret_id: str, action: str, code: str, *, day: str) -> None: ...

    async def used(self, secret_ids: list[str]) -> dict[str, int]:
        return {}

    async def usage(self, secret_id: str | None = None, since: str | None = None) -> list[Any]:
        return []

    async def close(self) -> None: ...


def serve_unmetered(port: int, credentials: Path) -> None:
    import uvicorn

    from denseface.server.run import build_app
    from denseface.server.settings import Settings

    settings = Settings.from_env(host="127.0.0.1", port=port, credentials=credentials)
    app, _, _ = build_app(settings, accounts=Unmetered())  # type: ignore[arg-type]
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", server_header=False)


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

    for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text.splitlines():
        if line.startswith("denseface_store_seconds_total "):
            return float(line.split()[1])
    return 0.0


def measure(args: argparse.Namespace, image_b64: str, store: str, work: Path) -> list[dict[str, Any]]:
    redis = None
    url = None
    if store == "redis":
        redis, url = start_redis(work)
    proc, port, log_path, _ = http_load.start_server(work, args.workers, args.detector, store, url)
    rows: list[dict[str, Any]] = []
    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as client:
            warm = http_load.LoadSpec(port, proc.pid, 2, image_b64, requests=max(4, args.warmup))
            client.submit(http_load.run_load, warm).result(timeout=600)
            for level in args.levels:
                for request, b64, expect in (("photo", image_b64, "OK"), ("empty", "", EMPTY_CODE)):
                    spec = http_load.LoadSpec(port, proc.pid, level, b64, expect=expect)
                    spec.duration, spec.requests = (
                        (None, args.requests) if args.requests else (args.duration, None)
                    )
                    main0, store0 = cpu_s(proc.pid), store_seconds(port)
                    redis0 = cpu_s(redis.pid) if redis else 0.0
                    result = client.submit(http_load.run_load, spec).result(timeout=3600)
                    n = max(1, result.requests)
                    row = {"store": store, "request": request, **asdict(result)}
                    row["main_cpu_ms_per_req"] = round((cpu_s(proc.pid) - main0) * 1000 / n, 3)
                    row["redis_cpu_ms_per_req"] = round(
                        (cpu_s(redis.pid) - redis0) * 1000 / n if redis else 0.0, 3
                    )
                    row["store_ms_per_req"] = round((store_seconds(port) - store0) * 1000 / n, 3)
                    row["loadavg_after"] = round(os.getloadavg()[0], 2)
                    print(f"{store} {request} c={level}: {row}", file=sys.stderr)
                    rows.append(row)
    finally:
        http_load.stop_server(proc)
        if proc.returncode not in (0, -15):
            print(log_path.read_text(errors="replace")[-4000:], file=sys.stderr)
        if redis is not None:
            redis.terminate()
            redis.wait(timeout=10)
    return rows


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
    return "\n".join(lines)


def main(args: argparse.Namespace, image_b64: str) -> int:
    import json

    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    if not stores or set(stores) - {"off", "sqlite", "redis"}:
        raise SystemExit("--stores: a comma-separated list of off, sqlite, redis")
    rows: list[dict[str, Any]] = []
    for store in stores:
        with tempfile.TemporaryDirectory(prefix=f"denseface-metering-{store}-") as tmp:
            rows += measure(args, image_b64, store, Path(tmp))
    print(markdown(rows, os.cpu_count()))
    if args.json is not None:
        args.json.write_text(json.dumps({"metering": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    # started by http_load.start_server(store="off"): --serve PORT --credentials FILE
    if len(sys.argv) == 5 and sys.argv[1] == "--serve" and sys.argv[3] == "--credentials":
        serve_unmetered(int(sys.argv[2]), Path(sys.argv[4]))
        sys.exit(0)
    sys.exit("run: python benchmarks/http_load.py --metering")
