"""Batch throughput: the library's own loop, local worker processes (1 and 2) and Ray Data, in one run.

    python benchmarks/batch.py [--photos 132] [--rounds 2] [--no-ray] [--json out.json]

The photos are the shared landmark photos (66, 0.1-1 MP, one to a few faces), repeated up to
``--photos``. Each configuration analyses the same list:

* ``library loop``: one ``Analyzer`` in this process, ``analyze(path)`` photo after photo (after a
  warm-up photo);
* ``local N``: ``denseface.batch`` with N worker processes (``LocalPool``), rows as the CLI writes them;
* ``Ray N``: Ray Data, an actor pool of N on a local runtime (``num_cpus`` = N + 2).

photos/s comes from two runs of each configuration, of half the photos and of all of them:
``(n - n/2) / (T(n) - T(n/2))``, so what a run costs once (starting processes, loading models, Ray
starting its actors) cancels out for every configuration alike (Ray's runtime itself is started
before, as a cluster would be). Each
configuration runs ``--rounds`` times, interleaved, and its best round counts (the machine is shared: a
round slowed by another process is not the code's speed). RSS is each worker process's peak
(``VmHWM``). The load average before and after is printed: on a busy machine the ratios between
processes mean little.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "datasets" / "landmarks" / "images"
GOALS = {
    "2 workers ÷ 1 worker": 1.7,
    "1 worker ÷ library loop": 0.9,
    "1 worker ÷ library loop, by CPU time": 0.9,
    "Ray 2 ÷ local 2": 0.8,
}
MAX_RSS_MB = 150.0


def photo_list(count: int) -> list[str]:
    photos = sorted(str(p) for p in PHOTOS.iterdir() if p.suffix.lower() in (".jpg", ".png"))
    if not photos:
        raise SystemExit(f"no photos in {PHOTOS}")
    return [photos[i % len(photos)] for i in range(count)]


def drain(rows: Iterable[dict[str, Any]]) -> tuple[float, int]:
    """Seconds until the last row, and the faces."""
    started = time.perf_counter()
    faces = sum(len(row["faces"]) for row in rows)
    return time.perf_counter() - started, faces


def library_loop(photos: list[str], model_dir: Path | None) -> tuple[float, int, dict[str, Any]]:
    from denseface.api import Analyzer

    started, cpu = time.perf_counter(), time.process_time()
    analyzer = Analyzer(model_dir)
    faces = sum(len(analyzer.analyze(path)) for path in photos)
    # this process's peak: the library on the same photos (it runs first, before Ray is imported)
    extra = {"process_rss_mb": vm_hwm_mb(os.getpid()), "cpu_s": time.process_time() - cpu}
    return time.perf_counter() - started, faces, extra


def cpu_seconds(pid: int | None) -> float:
    """utime + stime of a live process."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def vm_hwm_mb(pid: int | None) -> float:
    if pid is None:
        return 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def local(photos: list[str], workers: int, model_dir: Path | None) -> tuple[float, int, dict[str, Any]]:
    from denseface.batch.local import LocalPool
    from denseface.batch.worker import WorkerConfig

    started, cpu = time.perf_counter(), time.process_time()
    with LocalPool(workers, WorkerConfig(model_dir=model_dir)) as pool:
        _, faces = drain(pool.map(photos))
        seconds = time.perf_counter() - started
        workers_cpu = sum(cpu_seconds(pid) for pid in pool.pids)
        extra = {
            "rss_mb": [vm_hwm_mb(pid) for pid in pool.pids],
            "restarts": pool.restarts,
            "cpu_s": workers_cpu + time.process_time() - cpu,  # the workers' and this process's
        }
    return seconds, faces, extra


def on_ray(photos: list[str], workers: int, model_dir: Path | None) -> tuple[float, int, dict[str, Any]]:
    import ray

    from denseface.batch.on_ray import run_ray
    from denseface.batch.worker import WorkerConfig

    config = WorkerConfig(model_dir=model_dir)
    if not ray.is_initialized():  # the runtime's own start is not counted (a cluster is already up)
        ray.init(num_cpus=workers + 2, include_dashboard=False, logging_level=logging.WARNING)
        drain(
            run_ray(photos[:4], workers=workers, config=config)
        )  # Ray's first worker processes start slowly
    seconds, faces = drain(run_ray(photos, workers=workers, config=config))
    return seconds, faces, {}


def measure(run: Any, photos: list[str]) -> dict[str, Any]:
    """photos/s from two runs, of half the photos and of all: (n - n/2) / (T(n) - T(n/2)), so what a
    run costs once (processes, models, actors) cancels out."""
    half = photos[: len(photos) // 2]
    t_half, _, extra_half = run(half)
    t_all, faces, extra = run(photos)
    rate = (len(photos) - len(half)) / (t_all - t_half) if t_all > t_half else 0.0
    out = {"photos_per_s": rate, "photos": len(photos), "faces": faces, "seconds": [t_half, t_all], **extra}
    if "cpu_s" in extra:  # CPU per photo the same way: what another process's load does not change
        out["cpu_ms_per_photo"] = 1000 * (extra["cpu_s"] - extra_half["cpu_s"]) / (len(photos) - len(half))
    return out


def ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> float | None:
    if not a or not b or not b["photos_per_s"]:
        return None
    return float(a["photos_per_s"]) / float(b["photos_per_s"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--photos", type=int, default=132, help="photos per configuration (default 132)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds; the best of each counts (default 2)")
    parser.add_argument("--no-ray", action="store_true", help="skip Ray")
    parser.add_argument("--quick", action="store_true", help="smoke test: 8 photos, 1 round")
    parser.add_argument("--model-dir", type=Path, help="models (default: $DENSEFACE_MODEL_DIR or cache)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.photos, args.rounds = 8, 1
    logging.basicConfig(level=logging.WARNING)
    photos = photo_list(args.photos)
    load_before = os.getloadavg()
    configs: dict[str, Any] = {
        "library loop": lambda p: library_loop(p, args.model_dir),
        "local 1": lambda p: local(p, 1, args.model_dir),
        "local 2": lambda p: local(p, 2, args.model_dir),
    }
    if not args.no_ray:
        configs["Ray 2"] = lambda p: on_ray(p, 2, args.model_dir)
    best: dict[str, dict[str, Any]] = {}
    for _ in range(args.rounds):
        for name, run in configs.items():
            result = measure(run, photos)
            if name in best and "process_rss_mb" in best[name]:  # the first round's, before Ray came in
                result["process_rss_mb"] = best[name]["process_rss_mb"]
            if name not in best or result["photos_per_s"] > best[name]["photos_per_s"]:
                best[name] = result
    load_after = os.getloadavg()

    print(f"## Batch throughput ({args.photos} photos, best of {args.rounds} rounds, {os.cpu_count()} cores)")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min)\n")
    print("| configuration | photos/s | CPU ms per photo (all processes) | faces | peak RSS per worker MB |")
    print("|---|---|---|---|---|")
    for name, res in best.items():
        rss = "/".join(f"{r:.0f}" for r in res.get("rss_mb", [])) or "–"
        if "process_rss_mb" in res:
            rss = f"(this process: {res['process_rss_mb']:.0f})"
        cpu = f"{res['cpu_ms_per_photo']:.1f}" if "cpu_ms_per_photo" in res else "–"
        print(f"| {name} | {res['photos_per_s']:.2f} | {cpu} | {res['faces']} | {rss} |")
    ratios = {
        "2 workers ÷ 1 worker": ratio(best.get("local 2"), best.get("local 1")),
        "1 worker ÷ library loop": ratio(best.get("local 1"), best.get("library loop")),
        "Ray 2 ÷ local 2": ratio(best.get("Ray 2"), best.get("local 2")),
    }
    if "cpu_ms_per_photo" in best.get("local 1", {}) and best["library loop"].get("cpu_ms_per_photo"):
        # per-core throughput from CPU time: the library's CPU per photo ÷ the batch's (all processes)
        cpu_ratio = best["library loop"]["cpu_ms_per_photo"] / best["local 1"]["cpu_ms_per_photo"]
        ratios["1 worker ÷ library loop, by CPU time"] = cpu_ratio
    print("\n| ratio | measured | goal | met |")
    print("|---|---|---|---|")
    for name, value in ratios.items():
        if value is None:
            continue
        goal = GOALS[name]
        print(f"| {name} | {value:.2f} | ≥ {goal} | {'yes' if value >= goal else 'no'} |")
    rss_all = [r for res in best.values() for r in res.get("rss_mb", [])]
    if rss_all:
        peak = max(rss_all)
        met = "yes" if peak <= MAX_RSS_MB else "no"
        print(f"| peak RSS of a worker | {peak:.0f} MB | ≤ {MAX_RSS_MB:.0f} MB | {met} |")
    if args.json:
        meta = {"photos": args.photos, "rounds": args.rounds, "load": [load_before, load_after]}
        args.json.write_text(json.dumps({"meta": meta, "results": best, "ratios": ratios}, indent=1))
    if "Ray 2" in configs:
        import ray

        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
