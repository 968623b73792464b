"""Accuracy of AnalyzeFace's 90 points on the shared ground-truth faces (``--help`` for options).

The 90 points (``Face.shape90()``) that stand for an iBUG-68 point by definition of the two schemes
(:data:`PAIRS`: the same anatomical point, or the same point of the 888 layout that ``to_ibug68()``
takes) are compared with the manifest's iBUG-68 annotation (WFLW-98 through the standard 98→68 map),
face by face, matched by position as in ``accuracy.py`` (whose sets, matching and normalizers this
reuses). Mode 0 with AnalyzeFace's limit of 10 faces. Reported: NME (in % of the manifest's normalizer)
per anchor group, median and mean over the found faces. Nothing is fitted: the pairs are definitions.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from accuracy import (
    DEFAULT_MANIFEST,
    EVAL_SETS,
    EvalSet,
    engine_version,
    ground_truth_68,
    load_manifest,
    match_faces,
    normalizer,
)

from denseface import Analyzer
from denseface.engine.result import Face
from denseface.rpc.actions.analyze_face import MAX_FACES

#: (AnalyzeFace region, index, iBUG-68 index, anchor group)
PAIRS: tuple[tuple[str, int, int, str], ...] = (
    ("FaceProfile", 0, 0, "jaw ends"),
    ("FaceProfile", 20, 16, "jaw ends"),
    ("FaceProfile", 10, 8, "chin"),
    ("FaceProfile", 5, 4, "jaw"),  # Chin[40], as iBUG 4 in to_ibug68()
    ("FaceProfile", 15, 12, "jaw"),  # Chin[120] (iBUG 12 is Chin[119])
    ("LeftEyeBrow", 0, 17, "brow ends"),
    ("LeftEyeBrow", 4, 21, "brow ends"),
    ("RightEyeBrow", 4, 22, "brow ends"),
    ("RightEyeBrow", 0, 26, "brow ends"),
    ("LeftEyeBrow", 6, 19, "brows"),  # the upper edge's middle
    ("RightEyeBrow", 6, 24, "brows"),
    ("LeftEye", 0, 36, "eye corners"),
    ("LeftEye", 4, 39, "eye corners"),
    ("RightEye", 4, 42, "eye corners"),
    ("RightEye", 0, 45, "eye corners"),
    ("Nose", 0, 30, "nose tip"),
    ("Nose", 1, 27, "nose"),  # top of the bridge
    ("Nose", 6, 32, "nose"),
    ("Nose", 7, 33, "nose"),  # subnasale
    ("Nose", 8, 34, "nose"),
    ("Mouth", 0, 48, "mouth corners"),
    ("Mouth", 6, 54, "mouth corners"),
    ("Mouth", 9, 51, "lips"),  # outer upper lip, middle
    ("Mouth", 3, 57, "lips"),  # outer lower lip, middle
    ("Mouth", 19, 62, "lips"),  # inner upper lip, middle
    ("Mouth", 14, 66, "lips"),  # inner lower lip, middle
)
GROUPS: tuple[str, ...] = (*dict.fromkeys(group for *_, group in PAIRS), "all pairs")


def pair_errors(face: Face, gt68: np.ndarray[Any, Any], norm: float) -> dict[str, float]:
    """Mean normalised error per anchor group (and over every pair) of one matched face."""
    shape = face.shape90()
    errors: dict[str, list[float]] = {group: [] for group in GROUPS}
    for region, index, ibug, group in PAIRS:
        error = float(np.linalg.norm(shape[region][index] - gt68[ibug])) / norm
        errors[group].append(error)
        errors["all pairs"].append(error)
    return {group: float(np.mean(values)) for group, values in errors.items()}


def evaluate(analyzer: Analyzer, records: Sequence[dict[str, Any]], root: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    cache: dict[tuple[str, bool], list[Face]] = {}
    for es in EVAL_SETS:
        out[es.key] = _evaluate_set(analyzer, records, root, es, cache)
    return out


def _evaluate_set(
    analyzer: Analyzer,
    records: Sequence[dict[str, Any]],
    root: Path,
    es: EvalSet,
    cache: dict[tuple[str, bool], list[Face]],
) -> dict[str, Any]:
    by_image: dict[str, list[tuple[dict[str, Any], np.ndarray[Any, Any]]]] = {}
    for rec in records:
        gt = ground_truth_68(rec) if es.selects(rec) else None
        if gt is not None:
            by_image.setdefault(rec["image"], []).append((rec, gt))
    faces_scored: list[dict[str, float]] = []
    annotated = 0
    for image, items in by_image.items():
        key = (image, es.rotate)
        if key not in cache:
            cache[key] = analyzer.analyze(root / image, mode=0, rotate=es.rotate, max_faces=MAX_FACES)
        faces = cache[key]
        matches = match_faces([gt for _, gt in items], [f.box for f in faces])
        for (rec, gt), (index, _) in zip(items, matches, strict=True):
            annotated += 1
            if index is not None:
                faces_scored.append(pair_errors(faces[index], gt, normalizer(gt, rec["normalizer"])))
    summary: dict[str, Any] = {"label": es.label, "found": len(faces_scored), "annotated": annotated}
    for group in GROUPS:
        values = [f[group] for f in faces_scored]
        summary[group] = {
            "median": float(np.median(values)) if values else None,
            "mean": float(np.mean(values)) if values else None,
        }
    return summary


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.2f}%"


def markdown(results: dict[str, Any], version: str) -> str:
    head = "| set | found | " + " | ".join(GROUPS) + " |"
    lines = [
        f"denseface {version}: AnalyzeFace's 90 points against iBUG-68, NME median (mean) per anchor group",
        "",
        head,
        "|" + "---|" * (len(GROUPS) + 2),
    ]
    for row in results.values():
        cells = [f"{_pct(row[g]['median'])} ({_pct(row[g]['mean'])})" for g in GROUPS]
        lines.append(f"| {row['label']} | {row['found']}/{row['annotated']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--model-dir", type=Path, default=None, help="default: DENSEFACE_MODEL_DIR / cache")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="write the numbers")
    args = parser.parse_args(argv)
    try:
        records = load_manifest(args.manifest)
    except (OSError, ValueError) as exc:
        print(f"accuracy90: cannot read manifest: {exc}", file=sys.stderr)
        return 2
    results = evaluate(Analyzer(args.model_dir), records, args.manifest.parent)
    version = engine_version()
    print(markdown(results, version))
    if args.json is not None:
        args.json.write_text(json.dumps({"engine": version, "sets": results}, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
