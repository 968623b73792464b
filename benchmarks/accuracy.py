"""Landmark accuracy of denseface on the shared ground-truth faces (``--help`` for options).

Reads ``../shared/datasets/landmarks/manifest.json`` (relative to the repository root), runs the
Analyzer (mode 0) on every image and matches each annotated face to a detected face by position
(greedy, highest IoU of the ground-truth points' box with the face box; the box must contain the
points' centroid). Extra detections are not errors; a missed face counts as not found and is left
out of the error averages. Per face, normalised by the manifest's ``normalizer``:

(a) ``68-pt NME``: mean distance of ``Face.to_ibug68()`` to the iBUG-68 ground truth (WFLW-98 via
    the standard 98→68 map; COFW-29 and AFLW-19/21 have no clean 68-point map and are skipped);
(b) ``contour NME``: mean distance of each ground-truth point to the polyline(s) of its region in
    the 888-point output (see :data:`IBUG_REGIONS`).

Nothing is fitted here: the numbers measure the layout and the pipeline as they are.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from denseface import Analyzer
from denseface.engine.draw import polylines
from denseface.engine.pipeline import PipelineOptions
from denseface.engine.result import Box, Face

F64 = npt.NDArray[np.float64]
Record = dict[str, Any]

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MANIFEST = REPO.parent / "shared" / "datasets" / "landmarks" / "manifest.json"
MIN_IOU = 0.2  # of the ground-truth points' box with a face box, to count as the same face

# iBUG-68 index ranges → the 888-layout region whose polyline(s) they should lie on.
IBUG_REGIONS: tuple[tuple[range, str], ...] = (
    (range(0, 17), "Chin"),
    (range(17, 22), "LeftEyeBrow"),
    (range(22, 27), "RightEyeBrow"),
    (range(27, 31), "CentralAxis"),
    (range(31, 36), "Nose"),
    (range(36, 42), "LeftEye"),
    (range(42, 48), "RightEye"),
    (range(48, 60), "MouthOutside"),
    (range(60, 68), "MouthInside"),
)
# Groups for the per-region breakdown.
GROUPS: dict[str, range] = {
    "jaw": range(0, 17),
    "brows": range(17, 27),
    "nose": range(27, 36),
    "eyes": range(36, 48),
    "mouth": range(48, 68),
}

# WFLW-98 index of each iBUG-68 point (the standard map: every 2nd jaw point, upper brow edges,
# nose, eye corners and lids without the lids' middle points, both lip contours).
WFLW98_TO_IBUG68: tuple[int, ...] = (
    *range(0, 33, 2),  # jaw 0-16
    *range(33, 38),  # image-left brow, upper edge 17-21
    *range(42, 47),  # image-right brow, upper edge 22-26
    *range(51, 60),  # nose bridge 27-30, nostril base 31-35
    60, 61, 63, 64, 65, 67,  # image-left eye 36-41
    68, 69, 71, 72, 73, 75,  # image-right eye 42-47
    *range(76, 96),  # outer lips 48-59, inner lips 60-67
)  # fmt: skip


@dataclass(frozen=True)
class EvalSet:
    key: str
    label: str
    rotate: bool
    selects: Callable[[Record], bool]


def _is(annotation: str, *, rotated: bool, scheme: str = "ibug68") -> Callable[[Record], bool]:
    def selects(rec: Record) -> bool:
        return bool(
            rec["scheme"] == scheme
            and rec["annotation"] == annotation
            and bool(rec.get("rotated", False)) == rotated
        )

    return selects


EVAL_SETS: tuple[EvalSet, ...] = (
    EvalSet("manual", "manual iBUG-68", False, _is("manual", rotated=False)),
    EvalSet("manual-rot", "manual, rotated 90/180/270 (rotate on)", True, _is("manual", rotated=True)),
    EvalSet("manual-rot-off", "manual, rotated (rotate off)", False, _is("manual", rotated=True)),
    EvalSet("3dmm-fit", "3dmm-fit (AFLW2000-3D, 300W-LP)", False, _is("3dmm-fit", rotated=False)),
    EvalSet("small", "small faces, upright", False, _is("manual-small-face", rotated=False)),
    EvalSet("small-rot", "small faces, rotated (rotate on)", True, _is("manual-small-face", rotated=True)),
    EvalSet("wflw", "WFLW-98 → 68", False, _is("manual", rotated=False, scheme="wflw98")),
)


# -- metrics ------------------------------------------------------------------------------------
def point_to_polyline(points: npt.ArrayLike, polyline: npt.ArrayLike, closed: bool) -> F64:
    """Distance of each of the (n, 2) points to the polyline (m, 2), closed or open."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    a = np.asarray(polyline, dtype=np.float64).reshape(-1, 2)
    if len(a) == 0:
        raise ValueError("empty polyline")
    if len(a) == 1:
        b = a
    elif closed:
        b = np.roll(a, -1, axis=0)
    else:
        a, b = a[:-1], a[1:]
    seg = b - a  # (s, 2)
    length2 = np.einsum("sk,sk->s", seg, seg)
    rel = p[:, None, :] - a[None, :, :]  # (n, s, 2)
    t = np.einsum("nsk,sk->ns", rel, seg) / np.where(length2 > 0, length2, 1.0)
    t = np.clip(t, 0.0, 1.0)
    nearest = a[None] + t[..., None] * seg[None]
    return np.asarray(np.linalg.norm(p[:, None, :] - nearest, axis=-1).min(axis=1), dtype=np.float64)


def point_to_region(points: npt.ArrayLike, name: str, region: npt.ArrayLike) -> F64:
    """Distance of each point to the nearest piece of a region, pieces as ``draw.polylines`` gives."""
    pts = np.asarray(region, dtype=np.float32)
    per_piece = [point_to_polyline(points, line, closed) for line, closed in polylines(name, pts)]
    return np.asarray(np.min(np.stack(per_piece), axis=0), dtype=np.float64)


def contour_distances(regions: Mapping[str, npt.ArrayLike], gt68: npt.ArrayLike) -> F64:
    """(68,) distance of every ground-truth point to its region's polyline(s), in pixels."""
    gt = np.asarray(gt68, dtype=np.float64)
    out = np.empty(68, dtype=np.float64)
    for idx, name in IBUG_REGIONS:
        out[idx.start : idx.stop] = point_to_region(gt[idx.start : idx.stop], name, regions[name])
    return out


def normalizer(gt68: npt.ArrayLike, kind: str) -> float:
    """``interocular``: outer eye corners (iBUG 36, 45); ``bbox``: sqrt(w·h) of the points' box."""
    gt = np.asarray(gt68, dtype=np.float64)
    if kind == "interocular":
        return float(np.linalg.norm(gt[36] - gt[45]))
    if kind == "bbox":
        w, h = gt.max(axis=0) - gt.min(axis=0)
        return float(np.sqrt(w * h))
    raise ValueError(f"unknown normalizer {kind!r}")


def ground_truth_68(rec: Record) -> F64 | None:
    """The record's points in iBUG-68 order, or None for schemes without a clean 68-point map."""
    pts = np.asarray(rec["points"], dtype=np.float64)
    if rec["scheme"] == "ibug68":
        return pts
    if rec["scheme"] == "wflw98":
        return pts[list(WFLW98_TO_IBUG68)]
    return None


def box_iou(a: tuple[float, float, float, float], b: Box) -> float:
    """IoU of an (x0, y0, x1, y1) box with a face :class:`Box`."""
    bx0, by0, bx1, by1 = b.x, b.y, b.x + b.width, b.y + b.height
    iw = max(0.0, min(a[2], bx1) - max(a[0], bx0))
    ih = max(0.0, min(a[3], by1) - max(a[1], by0))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + b.width * b.height - inter
    return inter / union if union > 0 else 0.0


def match_faces(gts: Sequence[F64], boxes: Sequence[Box]) -> list[tuple[int | None, float]]:
    """Greedy one-to-one match of ground-truth point sets to face boxes: (face index or None, IoU)."""
    pairs: list[tuple[float, int, int]] = []
    for g, gt in enumerate(gts):
        lo, hi = gt.min(axis=0), gt.max(axis=0)
        cx, cy = gt.mean(axis=0)
        for f, b in enumerate(boxes):
            inside = b.x <= cx <= b.x + b.width and b.y <= cy <= b.y + b.height
            overlap = box_iou((lo[0], lo[1], hi[0], hi[1]), b)
            if inside and overlap >= MIN_IOU:
                pairs.append((overlap, g, f))
    out: list[tuple[int | None, float]] = [(None, 0.0)] * len(gts)
    used: set[int] = set()
    for overlap, g, f in sorted(pairs, reverse=True):
        if out[g][0] is None and f not in used:
            out[g] = (f, overlap)
            used.add(f)
    return out


# -- evaluation ---------------------------------------------------------------------------------
@dataclass
class FaceResult:
    set: str
    image: str
    scheme: str
    normalizer: str
    norm_px: float
    found: bool
    faces_returned: int = 0  # by the Analyzer for the image (mode 0 returns at most 5)
    iou: float = 0.0
    nme68: float | None = None  # mean normalised error of to_ibug68()
    contour: float | None = None  # mean normalised point-to-contour distance
    nme68_points: list[float] | None = None  # per iBUG point, normalised
    contour_points: list[float] | None = None


def score_face(face: Face, gt: F64, norm: float) -> tuple[F64, F64]:
    """Per-point normalised errors (68-pt, contour) of one matched face."""
    pred = np.asarray(face.to_ibug68(), dtype=np.float64)
    point_err = np.linalg.norm(pred - gt, axis=1) / norm
    return point_err, contour_distances(face.regions, gt) / norm


def evaluate(
    analyzer: Analyzer, records: Sequence[Record], root: Path, sets: Sequence[EvalSet] = EVAL_SETS
) -> list[FaceResult]:
    results: list[FaceResult] = []
    cache: dict[tuple[str, bool], list[Face]] = {}
    for es in sets:
        by_image: dict[str, list[tuple[Record, F64]]] = {}
        for rec in records:
            gt = ground_truth_68(rec) if es.selects(rec) else None
            if gt is not None:
                by_image.setdefault(rec["image"], []).append((rec, gt))
        for image, items in by_image.items():
            if (image, es.rotate) not in cache:
                cache[image, es.rotate] = analyzer.analyze(root / image, mode=0, rotate=es.rotate)
            faces = cache[image, es.rotate]
            matches = match_faces([gt for _, gt in items], [f.box for f in faces])
            for (rec, gt), (index, overlap) in zip(items, matches, strict=True):
                norm = normalizer(gt, rec["normalizer"])
                res = FaceResult(
                    es.key, image, rec["scheme"], rec["normalizer"], norm, index is not None, len(faces)
                )
                if index is not None:
                    point_err, contour_err = score_face(faces[index], gt, norm)
                    res.iou = overlap
                    res.nme68, res.contour = float(point_err.mean()), float(contour_err.mean())
                    res.nme68_points = [round(float(v), 5) for v in point_err]
                    res.contour_points = [round(float(v), 5) for v in contour_err]
                results.append(res)
    return results


def _median_mean(values: Sequence[float | None]) -> dict[str, float | None]:
    v = [x for x in values if x is not None]
    return {"median": float(np.median(v)) if v else None, "mean": float(np.mean(v)) if v else None}


def summarize(results: Sequence[FaceResult], sets: Sequence[EvalSet] = EVAL_SETS) -> list[dict[str, Any]]:
    """Per set: found / annotated, and median and mean of both errors over the found faces."""
    rows: list[dict[str, Any]] = []
    for es in sets:
        mine = [r for r in results if r.set == es.key]
        row: dict[str, Any] = {"set": es.key, "label": es.label, "found": sum(r.found for r in mine)}
        row["annotated"] = len(mine)
        for metric in ("nme68", "contour"):
            for stat, value in _median_mean([getattr(r, metric) for r in mine]).items():
                row[f"{metric}_{stat}"] = value
        rows.append(row)
    return rows


def group_breakdown(results: Sequence[FaceResult], set_key: str) -> dict[str, dict[str, float]]:
    """Per region group: median (over faces) and worst face of the group's mean error."""
    found = [r for r in results if r.set == set_key and r.found and r.contour_points and r.nme68_points]
    out: dict[str, dict[str, float]] = {}
    if not found:
        return out
    contour = np.array([r.contour_points for r in found])
    point = np.array([r.nme68_points for r in found])
    for name, idx in GROUPS.items():
        c = contour[:, idx.start : idx.stop].mean(axis=1)
        p = point[:, idx.start : idx.stop].mean(axis=1)
        out[name] = {
            "contour_median": float(np.median(c)),
            "contour_max": float(c.max()),
            "nme68_median": float(np.median(p)),
            "nme68_max": float(p.max()),
        }
    return out


# -- report -------------------------------------------------------------------------------------
def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.2f}%"


def markdown_tables(results: Sequence[FaceResult], *, refine: bool, version: str = "") -> str:
    lines = [
        f"denseface {version}, mesh refinement pass {'on' if refine else 'off'}. NME in % of the "
        "manifest's normalizer; missed faces are not in the error columns.",
        "",
        "| set | found / annotated | 68-pt NME median | 68-pt NME mean | contour NME median "
        "| contour NME mean |",
        "|---|---|---|---|---|---|",
    ]
    for row in summarize(results):
        lines.append(
            f"| {row['label']} | {row['found']}/{row['annotated']} | {_pct(row['nme68_median'])} "
            f"| {_pct(row['nme68_mean'])} | {_pct(row['contour_median'])} | {_pct(row['contour_mean'])} |"
        )
    lines += [
        "",
        "Manual iBUG-68 faces (upright) by region group, mean error per face:",
        "",
        "| region | contour median | contour worst | 68-pt median | 68-pt worst |",
        "|---|---|---|---|---|",
    ]
    for name, g in group_breakdown(results, "manual").items():
        lines.append(
            f"| {name} | {_pct(g['contour_median'])} | {_pct(g['contour_max'])} "
            f"| {_pct(g['nme68_median'])} | {_pct(g['nme68_max'])} |"
        )
    scored = [r for r in results if r.contour is not None and r.set != "manual-rot-off"]
    scored.sort(key=lambda r: r.contour or 0.0, reverse=True)
    lines += ["", "Largest contour errors:", "", "| set | image | contour | 68-pt | worst group |"]
    lines.append("|---|---|---|---|---|")
    for r in scored[:6]:
        pts = np.array(r.contour_points or [0.0] * 68)
        worst = max(GROUPS, key=lambda g: float(pts[GROUPS[g].start : GROUPS[g].stop].mean()))
        lines.append(f"| {r.set} | {Path(r.image).name} | {_pct(r.contour)} | {_pct(r.nme68)} | {worst} |")
    cap = {True: " (5 faces returned: mode-0 cap)", False: ""}
    missed = [f"{r.set}: {Path(r.image).name}{cap[r.faces_returned >= 5]}" for r in results if not r.found]
    lines += ["", f"Not found ({len(missed)}): " + ("; ".join(missed) if missed else "none")]
    return "\n".join(lines)


def engine_version() -> str:
    """HEAD, plus a hash of any uncommitted change to the engine, which the numbers depend on."""

    def git(*args: str) -> bytes:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, check=True).stdout

    try:
        head = git("rev-parse", "--short", "HEAD").decode().strip()
        diff = git("diff", "HEAD", "--", "denseface/engine", "denseface/api.py", "denseface/data")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}+dirty.{hashlib.sha1(diff).hexdigest()[:8]}" if diff else head


def load_manifest(path: Path) -> list[Record]:
    data = json.loads(path.read_text(encoding="utf-8"))
    faces = data.get("faces") if isinstance(data, dict) else None
    if not isinstance(faces, list):
        raise ValueError(f"{path}: expected an object with a 'faces' list")
    return faces


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--model-dir", type=Path, default=None, help="default: DENSEFACE_MODEL_DIR / cache")
    parser.add_argument("--no-refine", action="store_true", help="skip the second mesh pass")
    default_size = PipelineOptions().min_face_size
    parser.add_argument("--min-face-size", type=float, default=default_size, help="px (tiling search)")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="write per-face numbers")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    options = PipelineOptions(refine=not args.no_refine, min_face_size=args.min_face_size)
    try:
        records = load_manifest(args.manifest)
    except (OSError, ValueError) as exc:
        print(f"accuracy: cannot read manifest: {exc}", file=sys.stderr)
        return 2
    analyzer = Analyzer(args.model_dir, options=options)
    results = evaluate(analyzer, records, args.manifest.parent)
    skipped = sorted({r["scheme"] for r in records if ground_truth_68(r) is None})
    version = engine_version()
    print(markdown_tables(results, refine=options.refine, version=version))
    print(f"\nSkipped schemes without a 68-point map: {', '.join(skipped) or 'none'}")
    if args.json is not None:
        payload = {
            "manifest": str(args.manifest),
            "engine": version,
            "options": asdict(options),
            "summary": summarize(results),
            "groups_manual": group_breakdown(results, "manual"),
            "faces": [asdict(r) for r in results],
        }
        args.json.write_text(json.dumps(payload, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
