"""Model runs per photo on every shared set: what face finding costs, counted, not timed
(``python benchmarks/cost.py [--before REV] [--json OUT]``).

Each photo is analysed in Mode 0 and Mode 1 (with ``rotate`` on for the rotated copies, as the
server would be asked) and the runs of each model are counted: full-range detector, short-range
detector (whole view and verification crops), mesh passes, CenterFace (whole view and crops). Counts
do not move with the machine's load, so two revisions compare exactly.

``--before REV`` runs this same script on another revision (a temporary ``git worktree``, its
``denseface`` imported from there) and prints both side by side. The models are counted by wrapping
their ``invoke``/``run`` methods, which works on any revision; on this one it equals
``Analyzer.model_runs()``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"
SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
MODELS = ("full", "short", "mesh", "center")


def photo_sets() -> Iterator[tuple[str, Path, bool]]:
    """(set, photo, rotate): the landmark sets by annotation, the robustness folders, the no-face photo."""
    manifest = json.loads((SHARED / "landmarks" / "manifest.json").read_text(encoding="utf-8"))
    seen: set[str] = set()
    for rec in manifest["faces"]:
        if rec["image"] in seen:
            continue
        seen.add(rec["image"])
        rotated = bool(rec.get("rotated", False))
        name = f"landmarks: {rec['annotation']}{', rotated (rotate on)' if rotated else ''}"
        yield name, SHARED / "landmarks" / rec["image"], rotated
    labelled = json.loads((SHARED / "robustness" / "face_boxes.json").read_text(encoding="utf-8"))
    boxes = {item["image"] for item in labelled["images"]}
    root = SHARED / "robustness"
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in SUFFIXES):
        relative = str(path.relative_to(root))
        if path.name == "no-faces.jpg":
            name = "robustness: no face"
        elif relative in boxes:
            name = "robustness: face_boxes.json (labelled)"
        elif "masked" in path.parts:
            name = "robustness: masked"
        else:
            name = "robustness: other"
        yield name, path, False


class _CountedSession:
    """Stands in for CenterFace's ONNX Runtime session (whose methods cannot be replaced), counting."""

    def __init__(self, session: Any, counts: dict[str, int]) -> None:
        self._session, self._counts = session, counts

    def run(self, *args: Any, **kwargs: Any) -> Any:
        self._counts["center"] += 1
        return self._session.run(*args, **kwargs)


def count_runs(analyzer: Any) -> dict[str, int]:
    """Counts the runs of every model of an Analyzer from now on, by wrapping them (works on any
    revision); the returned dict's values grow as the models run."""
    from denseface.engine import full_range

    pipeline = analyzer._pipeline  # the benchmark needs the models; not public API
    counts = dict.fromkeys(MODELS, 0)
    raw_full = full_range.invoke

    def full(interp: Any, model: str) -> None:
        counts["full"] += 1
        raw_full(interp, model)

    full_range.invoke = full  # type: ignore[assignment]
    for key, interp in (
        ("mesh", pipeline.mesh._interp),
        ("short", getattr(pipeline.short_range, "_interp", None)),
    ):
        if interp is not None:
            raw = interp.invoke

            def counted(_raw: Any = raw, _key: str = key) -> None:
                counts[_key] += 1
                _raw()

            interp.invoke = counted
    if pipeline.centerface is not None:
        pipeline.centerface._session = _CountedSession(pipeline.centerface._session, counts)
    return counts


def measure() -> dict[str, Any]:
    """Runs per photo for this process's ``denseface`` (Mode 0 and Mode 1)."""
    from denseface import Analyzer
    from denseface.engine.decode import load

    analyzer = Analyzer()
    counts = count_runs(analyzer)
    rows = []
    for name, path, rotate in photo_sets():
        decoded = load(path)
        row: dict[str, Any] = {"set": name, "photo": str(path.relative_to(SHARED)), "rotate": rotate}
        for mode in (0, 1):
            before = dict(counts)
            faces = analyzer.analyze(decoded, mode=mode, rotate=rotate)
            row[f"mode{mode}"] = {k: counts[k] - before[k] for k in MODELS}
            row[f"faces{mode}"] = len(faces)
        rows.append(row)
    return {"rows": rows}


def run_revision(rev: str) -> dict[str, Any]:
    """This script's measurement on another revision, in a temporary worktree."""
    with tempfile.TemporaryDirectory(prefix="denseface-cost-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), rev], check=True)
        try:
            out = Path(tmp) / "out.json"
            env = {**os.environ, "PYTHONPATH": str(tree)}
            subprocess.run([sys.executable, __file__, "--measure", str(out)], check=True, env=env)
            result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
            return result
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=True)


def per_set(rows: Sequence[dict[str, Any]], mode: int) -> dict[str, dict[str, Any]]:
    sets: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        sets[row["set"]].append(row)
    out = {}
    for name, items in sets.items():
        runs = [r[f"mode{mode}"] for r in items]
        out[name] = {
            "photos": len(items),
            "mean": {k: statistics.fmean(r[k] for r in runs) for k in MODELS},
            "faces": sum(r[f"faces{mode}"] for r in items),
            "cheap": sum(1 for r in runs if r["center"] == 0),
        }
    return out


def cell(stats: dict[str, Any]) -> str:
    m = stats["mean"]
    return f"{m['full']:.2f}+{m['short']:.2f}+{m['mesh']:.2f}+{m['center']:.2f}"


def markdown(after: dict[str, Any], before: dict[str, Any] | None) -> str:
    lines = []
    for mode in (0, 1):
        now = per_set(after["rows"], mode)
        then = per_set(before["rows"], mode) if before else {}
        lines += [
            f"\nMode {mode}: mean model runs per photo (full-range + short-range + mesh + CenterFace)\n",
            "| set | photos | before | after | faces before → after | no CenterFace run, after |",
            "|---|---|---|---|---|---|",
        ]
        for name, stats in now.items():
            old = then.get(name)
            lines.append(
                f"| {name} | {stats['photos']} | {cell(old) if old else '–'} | {cell(stats)} | "
                f"{old['faces'] if old else '–'} → {stats['faces']} | {stats['cheap']}/{stats['photos']} |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", metavar="REV", help="also count on this git revision, side by side")
    parser.add_argument("--json", type=Path, help="write the per-photo counts here")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # internal: one revision's counts
    args = parser.parse_args(argv)
    if args.measure:
        args.measure.write_text(json.dumps(measure()), encoding="utf-8")
        return 0
    after = measure()
    before = run_revision(args.before) if args.before else None
    print(markdown(after, before))
    if args.json:
        args.json.write_text(json.dumps({"after": after, "before": before}, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
