"""The cost of handing a job to a worker process and getting the answer back, without HTTP.

    python benchmarks/handoff.py [--jobs 2000]

One worker (:class:`denseface.server.workers.ProcessPool`), jobs sent one at a time from this process's
event loop. Three jobs: the 512² portrait of ``http_load.py`` as base64 (the real work; the hand-off is
the round trip minus the time the worker reports for the work, as ``/metrics`` counts it), the same
80 KB of text made invalid at its first character (the worker rejects it at once: the round trip is all
hand-off, with an 80 KB job and a small reply), and a 1-byte job (the floor: two process wake-ups).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import make_jpeg

from denseface.errors import DensefaceError
from denseface.rpc.service import AnalyzeJob
from denseface.server.worker_process import WorkerConfig
from denseface.server.workers import ProcessPool


async def measure(pool: ProcessPool, job: AnalyzeJob, jobs: int) -> tuple[list[float], float, float]:
    """Sorted round trips (s), this process's CPU per job (s) and the hand-off per job (s)."""

    async def once() -> None:
        with contextlib.suppress(DensefaceError):  # the rejected jobs answer an error, on purpose
            await pool.run(job)

    for _ in range(min(50, jobs)):
        await once()
    times: list[float] = []
    cpu0, handoff0 = time.process_time(), pool.stats().handoff_seconds
    for _ in range(jobs):
        started = time.perf_counter()
        await once()
        times.append(time.perf_counter() - started)
    cpu = (time.process_time() - cpu0) / jobs
    return sorted(times), cpu, (pool.stats().handoff_seconds - handoff0) / jobs


async def main(jobs: int) -> None:
    text = base64.b64encode(make_jpeg())
    cases = [
        (
            "512² portrait (real work)",
            AnalyzeJob(text, base64=True, mode=0, rotate=False),
            max(1, jobs // 10),
        ),
        (f"{len(text) // 1024} KB, rejected at once", AnalyzeJob(b"!" + text[1:], True, 0, False), jobs),
        ("1 byte, rejected at once", AnalyzeJob(b"!", base64=True, mode=0, rotate=False), jobs),
    ]
    pool = ProcessPool(1, WorkerConfig())
    await pool.start()
    try:
        print("| job | jobs | round trip p50 ms | p99 ms | hand-off ms/job | server CPU ms/job |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for name, job, n in cases:
            times, cpu, handoff = await measure(pool, job, n)
            p50, p99 = (times[int(q * (len(times) - 1))] * 1000 for q in (0.5, 0.99))
            print(f"| {name} | {n} | {p50:.3f} | {p99:.3f} | {handoff * 1000:.3f} | {cpu * 1000:.3f} |")
    finally:
        await pool.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2000, help="jobs per case (the real one: a tenth)")
    asyncio.run(main(parser.parse_args().jobs))
