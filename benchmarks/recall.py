"""Recall of face finding on the labelled robustness photos, per detector profile, beside MediaPipe
(``--help`` for options).

Ground truth: ``../shared/datasets/robustness/face_boxes.json`` — 16 photos, 52 faces with both eyes
visible and a box side ≥ 34 px, each checked by eye; ``ignore`` boxes (faces cut by the frame or in
full profile) are neither hits nor misses. A prediction matches a face by IoU ≥ 0.3 or by its centre
lying inside the face box (the file's rule).

Per photo and pooled, for each profile (``fast``, ``thorough``) and for MediaPipe Tasks'
``FaceLandmarker`` (IMAGE mode, 5 faces; optional, ``mediapipe`` importable):

* Mode 0 hits over ``min(5, labelled faces)`` (Mode 0 returns at most 5 faces: the largest; a slot
  taken by a face on an ``ignore`` box — a real face cut by the frame or in profile — is not owed);
* hits over all labelled faces with no cap (the pipeline asked for up to 50 faces);
* Mode 1: whether the one face returned is the largest labelled face, by the box the response
  reports (a labelled face not found at all, but that would be the largest, makes it wrong);
* unlabelled detections: Mode 0 faces matching neither a labelled face nor an ignore box;
* milliseconds per photo (Mode 0, one thread; a shared machine: read it as a rough guide).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from denseface import Analyzer
from denseface.engine.decode import load
from denseface.engine.pipeline import DETECTORS, PipelineOptions

REPO = Path(__file__).resolve().parents[1]
BOXES = REPO.parent / "shared" / "datasets" / "robustness" / "face_boxes.json"
Box = tuple[float, float, float, float]  # x0, y0, x1, y1
CAP = 5


@dataclass
class PhotoResult:
    image: str
    labelled: int
    possible_mode0: int  # min(5 − Mode 0 faces on ignore boxes, labelled)
    hits_mode0: int
    hits_all: int
    mode1_largest: bool
    unlabelled: int
    ms: float
    found_all: int = 0


@dataclass
class Profile:
    name: str
    photos: list[PhotoResult] = field(default_factory=list)


def iou(a: Box, b: Box) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def matches(face: Box, pred: Box) -> bool:
    cx, cy = (pred[0] + pred[2]) / 2, (pred[1] + pred[3]) / 2
    return iou(face, pred) >= 0.3 or (face[0] <= cx <= face[2] and face[1] <= cy <= face[3])


def hits(faces: Sequence[Box], preds: Sequence[Box]) -> tuple[int, set[int]]:
    """Labelled faces hit (each prediction counts once) and the predictions used."""
    used: set[int] = set()
    for face in faces:
        for i, pred in enumerate(preds):
            if i not in used and matches(face, pred):
                used.add(i)
                break
    return len(used), used


def area(b: Box) -> float:
    return (b[2] - b[0]) * (b[3] - b[1])


def largest_ok(faces: Sequence[Box], everything: Sequence[Box], pred: Sequence[Box]) -> bool:
    """Mode 1 is right when its face is the largest labelled face by the box the response reports.

    Every labelled face found (with no cap) is sized by its reported box; one not found is sized by its
    labelled box times the photo's median reported/labelled area ratio, so a missed face that would be
    the largest makes Mode 1 wrong."""
    if not faces or len(pred) != 1:
        return False
    reported: list[float | None] = []
    used: set[int] = set()
    for face in faces:
        found = next((i for i, b in enumerate(everything) if i not in used and matches(face, b)), None)
        if found is not None:
            used.add(found)
        reported.append(None if found is None else area(everything[found]))
    ratios = [r / area(f) for f, r in zip(faces, reported, strict=True) if r is not None and area(f) > 0]
    ratio = float(np.median(ratios)) if ratios else 1.0
    sizes = [r if r is not None else area(f) * ratio for f, r in zip(faces, reported, strict=True)]
    biggest = int(np.argmax(sizes))
    return reported[biggest] is not None and matches(faces[biggest], pred[0])


Finder = Callable[[np.ndarray[Any, Any], int], list[Box]]  # rgb, max faces → boxes


def evaluate(name: str, find: Finder, items: list[dict[str, Any]], root: Path) -> Profile:
    profile = Profile(name)
    for item in items:
        rgb = load(root / item["image"]).rgb
        faces = [tuple(b) for b in item["faces"]]
        ignore = [tuple(b) for b in item["ignore"]]
        start = time.perf_counter()
        mode0 = find(rgb, CAP)
        ms = (time.perf_counter() - start) * 1e3
        everything = find(rgb, 50)
        mode1 = find(rgb, 1)
        h0, used = hits(faces, mode0)
        ignored = [i for i, p in enumerate(mode0) if i not in used and any(matches(b, p) for b in ignore)]
        stray = sum(1 for i in range(len(mode0)) if i not in used and i not in ignored)
        profile.photos.append(
            PhotoResult(
                item["image"],
                len(faces),
                min(CAP - len(ignored), len(faces)),
                h0,
                hits(faces, everything)[0],
                largest_ok(faces, everything, mode1),
                stray,
                ms,
                len(everything),
            )
        )
    return profile


def denseface_finder(analyzer: Analyzer) -> Finder:
    def find(rgb: np.ndarray[Any, Any], max_faces: int) -> list[Box]:
        faces = analyzer.analyze(rgb, max_faces=max_faces)
        return [(f.box.x, f.box.y, f.box.x + f.box.width, f.box.y + f.box.height) for f in faces]

    return find


def mediapipe_finder(task: Path, opened: list[Any]) -> Finder | None:
    try:
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision
    except ImportError:
        print("recall: mediapipe not installed; its column is skipped", file=sys.stderr)
        return None
    landmarkers: dict[int, Any] = {}

    def find(rgb: np.ndarray[Any, Any], max_faces: int) -> list[Box]:
        if max_faces not in landmarkers:
            options = vision.FaceLandmarkerOptions(
                base_options=BaseOptions(model_asset_path=str(task)),
                running_mode=vision.RunningMode.IMAGE,
                num_faces=max_faces,
            )
            landmarkers[max_faces] = vision.FaceLandmarker.create_from_options(options)
            opened.append(landmarkers[max_faces])
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        result = landmarkers[max_faces].detect(image)
        height, width = rgb.shape[:2]
        boxes = []
        for marks in result.face_landmarks:
            xs = [p.x * width for p in marks]
            ys = [p.y * height for p in marks]
            boxes.append((min(xs), min(ys), max(xs), max(ys)))
        boxes.sort(key=area, reverse=True)
        return boxes

    return find


def summary(profile: Profile) -> dict[str, Any]:
    p = profile.photos
    return {
        "profile": profile.name,
        "hits_mode0": sum(r.hits_mode0 for r in p),
        "possible_mode0": sum(r.possible_mode0 for r in p),
        "hits_all": sum(r.hits_all for r in p),
        "labelled": sum(r.labelled for r in p),
        "mode1_largest": sum(r.mode1_largest for r in p),
        "photos": len(p),
        "unlabelled": sum(r.unlabelled for r in p),
        "median_ms": float(np.median([r.ms for r in p])) if p else 0.0,
    }


def markdown(profiles: Sequence[Profile]) -> str:
    lines = [
        "| profile | Mode 0 hits (≤ 5 a photo) | hits, no cap | Mode 1 = largest | unlabelled | median ms |",
        "|---|---|---|---|---|---|",
    ]
    for prof in profiles:
        s = summary(prof)
        lines.append(
            f"| {s['profile']} | {s['hits_mode0']}/{s['possible_mode0']} | {s['hits_all']}/{s['labelled']} "
            f"| {s['mode1_largest']}/{s['photos']} | {s['unlabelled']} | {s['median_ms']:.0f} |"
        )
    lines += ["", "| photo | labelled | " + " | ".join(p.name for p in profiles) + " |"]
    lines.append("|---|---|" + "---|" * len(profiles))
    for i, photo in enumerate(profiles[0].photos):
        cells = []
        for prof in profiles:
            r = prof.photos[i]
            cells.append(
                f"{r.hits_mode0}/{r.possible_mode0} · {r.hits_all} · {'✓' if r.mode1_largest else '✗'}"
            )
        lines.append(f"| {photo.image} | {photo.labelled} | " + " | ".join(cells) + " |")
    lines.append("\n(cells: Mode 0 hits / possible · hits with no cap · Mode 1 largest)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--no-mediapipe", action="store_true")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a PipelineOptions field (JSON value)",
    )
    args = parser.parse_args(argv)
    extra = {k: json.loads(v) for k, v in (o.split("=", 1) for o in args.option)}
    import cv2

    cv2.setNumThreads(1)
    data = json.loads(BOXES.read_text(encoding="utf-8"))
    items, root = data["images"], BOXES.parent
    profiles = []
    for name in DETECTORS:
        analyzer = Analyzer(args.model_dir, options=PipelineOptions(**{**extra, "detector": name}))
        profiles.append(evaluate(name, denseface_finder(analyzer), items, root))
    if not args.no_mediapipe and importlib.util.find_spec("mediapipe") is None:
        print("recall: mediapipe not installed; its column is skipped", file=sys.stderr)
    elif not args.no_mediapipe:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from speed import task_file

        opened: list[Any] = []
        finder = mediapipe_finder(task_file(None), opened)
        if finder is not None:
            profiles.append(evaluate("MediaPipe Tasks", finder, items, root))
        for landmarker in opened:
            landmarker.close()
    print(markdown(profiles))
    if args.json is not None:
        payload = {
            "summary": [summary(p) for p in profiles],
            "photos": {p.name: [asdict(r) for r in p.photos] for p in profiles},
        }
        args.json.write_text(json.dumps(payload, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
