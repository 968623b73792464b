"""Precision and recall of face finding: false faces on photos without faces, faces found on every
shared annotated set, and the verification threshold's curve (``--help`` for options).

Every photo is analysed once with verification off (``verify_threshold=0``, the pipeline as it was
before verification) and each face it returns is scored by the verifier (BlazeFace short-range +
CenterFace on the aligned crop; see ``denseface/engine/verify.py``). A face survives a threshold t
when its evidence ≥ t — exactly the pipeline's rule — so one pass gives the whole curve. Then the
photos are analysed again with the default options, and those numbers are the "after" columns.

Photos without faces (each with rotation detection off and on):

* tune — ``skimage.data`` (scikit-image; every photo but ``astronaut`` and ``camera``, which show
  people), ``../shared/datasets/robustness/mtcnn/no-faces.jpg``, Debian's ``gnome-backgrounds``
  (wallpapers) and the ``animals`` folder of Debian's ``tuxpaint-stamps-default`` (photos and
  drawings of animals);
* held out, never looked at while choosing — every other folder of ``tuxpaint-stamps-default``
  (food, objects, vehicles, plants, symbols, space, town…; ``people`` left out).

``apt-get install gnome-backgrounds tuxpaint-stamps-default`` to include the Debian photos.

Photos with faces: tune — ``robustness/face_boxes.json`` (52 labelled faces) and the masked faces
of ``robustness/ultralight/masked`` (face count: the hardest real faces here); held out — every
annotated face of ``landmarks/manifest.json`` by set, and the face count on every other
robustness photo (unlabelled, so a count shows faces lost, not faces wrong).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from denseface import Analyzer
from denseface.engine.decode import load
from denseface.engine.pipeline import PipelineOptions
from denseface.engine.result import Box, Face

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"
TUXPAINT = Path("/usr/share/tuxpaint/stamps")
GNOME = Path("/usr/share/backgrounds/gnome")
MIN_FACE = 34.0  # the server's smallest face: smaller ones answer FaceSizeTooSmall, not a face
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
GRID = [round(0.01 * i, 2) for i in range(0, 201)]


@dataclass
class Found:
    """One face found with verification off, and its evidence."""

    box: Box
    evidence: float


@dataclass
class Photo:
    path: Path
    rotate: bool
    group: str  # set name
    split: str  # "tune" or "held-out"
    negative: bool
    faces: list[Box] = field(default_factory=list)  # labelled faces (face_boxes / manifest)
    ignore: list[Box] = field(default_factory=list)
    before: list[Found] = field(default_factory=list)
    after: list[Box] = field(default_factory=list)


# -- photo sets ------------------------------------------------------------------------------------
def skimage_photos() -> list[Path]:
    try:
        import skimage
    except ImportError:
        print("precision: scikit-image not installed; its photos are skipped", file=sys.stderr)
        return []
    folder = Path(skimage.__file__).parent / "data"
    people = {"astronaut", "camera"}
    return sorted(p for p in folder.iterdir() if p.suffix in IMAGE_SUFFIXES and p.stem not in people)


def package_photos(folder: Path, exclude: Iterable[str] = ()) -> list[Path]:
    if not folder.is_dir():
        print(f"precision: {folder} not installed; skipped", file=sys.stderr)
        return []
    skip = set(exclude)
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and not skip.intersection(p.relative_to(folder).parts)
    )


def box_of(x0: float, y0: float, x1: float, y1: float) -> Box:
    return Box(x0, y0, x1 - x0, y1 - y0)


def negatives(limit: int | None) -> list[Photo]:
    sets = [
        ("skimage", "tune", skimage_photos()),
        ("shared no-face", "tune", [SHARED / "robustness" / "mtcnn" / "no-faces.jpg"]),
        ("gnome backgrounds", "tune", package_photos(GNOME)),
        ("tuxpaint animals", "tune", package_photos(TUXPAINT / "animals")[:limit]),
        (
            "tuxpaint, all but animals and people",
            "held-out",
            package_photos(TUXPAINT, exclude=("people", "animals"))[:limit],
        ),
    ]
    return [
        Photo(p, rot, name, split, True)
        for name, split, paths in sets
        for p in paths
        for rot in (False, True)
    ]


def labelled_robustness() -> tuple[list[Photo], set[str]]:
    data = json.loads((SHARED / "robustness" / "face_boxes.json").read_text(encoding="utf-8"))
    photos = [
        Photo(
            SHARED / "robustness" / item["image"],
            False,
            "face_boxes.json",
            "tune",
            False,
            faces=[box_of(*b) for b in item["faces"]],
            ignore=[box_of(*b) for b in item["ignore"]],
        )
        for item in data["images"]
    ]
    return photos, {item["image"] for item in data["images"]}


def manifest_photos() -> list[Photo]:
    root = SHARED / "landmarks"
    data = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    photos: dict[str, Photo] = {}
    for rec in data["faces"]:
        rotated = bool(rec.get("rotated", False))
        group = f"{rec['annotation']}{' rotated (rotate on)' if rotated else ''}"
        pts = np.asarray(rec["points"], dtype=np.float64)[:, :2]
        pts = pts[(pts >= 0).all(axis=1)]
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        photo = photos.setdefault(rec["image"], Photo(root / rec["image"], rotated, group, "held-out", False))
        box = box_of(float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))
        if not any(_iou(box, seen) >= 0.5 for seen in photo.faces):  # one face in two schemes
            photo.faces.append(box)
    return list(photos.values())


def other_robustness(labelled: set[str]) -> list[Photo]:
    root = SHARED / "robustness"
    paths = package_photos(root)
    keep = [p for p in paths if str(p.relative_to(root)) not in labelled and p.name != "no-faces.jpg"]
    masked = root / "ultralight" / "masked"
    return [
        Photo(p, False, "masked faces (face count)", "tune", False)
        if p.is_relative_to(masked)
        else Photo(p, False, "other robustness photos (face count)", "held-out", False)
        for p in keep
    ]


# -- matching --------------------------------------------------------------------------------------
def _iou(a: Box, b: Box) -> float:
    iw = max(0.0, min(a.x + a.width, b.x + b.width) - max(a.x, b.x))
    ih = max(0.0, min(a.y + a.height, b.y + b.height) - max(a.y, b.y))
    inter = iw * ih
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union > 0 else 0.0


def _centre_in(pred: Box, face: Box) -> bool:
    cx, cy = pred.x + pred.width / 2, pred.y + pred.height / 2
    return face.x <= cx <= face.x + face.width and face.y <= cy <= face.y + face.height


def matches(face: Box, pred: Box) -> bool:
    """face_boxes.json's rule: IoU ≥ 0.3 or the prediction's centre inside the face box."""
    return _iou(face, pred) >= 0.3 or _centre_in(pred, face)


def count_hits(photo: Photo, preds: Sequence[Box]) -> tuple[int, int]:
    """(labelled faces hit, predictions matching neither a face nor an ignore box)."""
    used: set[int] = set()
    hits = 0
    for face in photo.faces:
        for i, pred in enumerate(preds):
            if i not in used and matches(face, pred):
                used.add(i)
                hits += 1
                break
    stray = sum(
        1
        for i, pred in enumerate(preds)
        if i not in used and not any(matches(b, pred) for b in photo.faces + photo.ignore)
    )
    return hits, stray


# -- running ---------------------------------------------------------------------------------------
def run(photos: Sequence[Photo], model_dir: Path | None) -> None:
    plain = Analyzer(model_dir, options=PipelineOptions(verify_threshold=0.0))
    default = Analyzer(model_dir)
    verifier = plain._pipeline.verifier
    if verifier is None:
        raise SystemExit("precision: the pipeline has no verifier")
    for i, photo in enumerate(photos):
        decoded = load(photo.path)
        faces: list[Face] = plain.analyze(decoded, mode=0, rotate=photo.rotate)
        photo.before = [Found(f.box, verifier.evidence(decoded.rgb, f.mesh, math.inf).total) for f in faces]
        photo.after = [f.box for f in default.analyze(decoded, mode=0, rotate=photo.rotate)]
        if (i + 1) % 200 == 0:
            print(f"precision: {i + 1}/{len(photos)} photos", file=sys.stderr)


def big(boxes: Iterable[Box]) -> list[Box]:
    return [b for b in boxes if max(b.width, b.height) >= MIN_FACE]


def at(photo: Photo, threshold: float) -> list[Box]:
    return [f.box for f in photo.before if f.evidence >= threshold]


def negative_row(group: str, photos: Sequence[Photo], threshold: float | None) -> dict[str, Any]:
    """False faces (any size, and ≥ 34 px) and photos with one, at a threshold (None = after)."""
    rows = [p for p in photos if p.group == group]

    def faces(p: Photo) -> list[Box]:
        return p.after if threshold is None else at(p, threshold)

    return {
        "set": group,
        "split": rows[0].split if rows else "",
        "runs": len(rows),
        "false_faces": sum(len(faces(p)) for p in rows),
        "false_faces_34px": sum(len(big(faces(p))) for p in rows),
        "photos_with_face_34px": sum(1 for p in rows if big(faces(p))),
    }


def positive_row(group: str, photos: Sequence[Photo], threshold: float | None) -> dict[str, Any]:
    rows = [p for p in photos if p.group == group]
    labelled = sum(len(p.faces) for p in rows)
    hits = stray = found = 0
    for p in rows:
        preds = p.after if threshold is None else at(p, threshold)
        found += len(preds)
        if p.faces:
            h, s = count_hits(p, preds)
            hits, stray = hits + h, stray + s
    return {
        "set": group,
        "split": rows[0].split if rows else "",
        "photos": len(rows),
        "labelled": labelled,
        "hits": hits,
        "unlabelled": stray,
        "faces_found": found,
    }


def curve(photos: Sequence[Photo]) -> list[dict[str, Any]]:
    neg = [p for p in photos if p.negative]
    pos = [p for p in photos if not p.negative and p.faces]
    counted = [p for p in photos if not p.negative and not p.faces]
    out = []
    for t in GRID:
        out.append(
            {
                "threshold": t,
                "false_faces_tune": sum(len(at(p, t)) for p in neg if p.split == "tune"),
                "false_faces_held_out": sum(len(at(p, t)) for p in neg if p.split == "held-out"),
                "hits_tune": sum(count_hits(p, at(p, t))[0] for p in pos if p.split == "tune"),
                "hits_held_out": sum(count_hits(p, at(p, t))[0] for p in pos if p.split == "held-out"),
                "counted_tune": sum(len(at(p, t)) for p in counted if p.split == "tune"),
                "counted_held_out": sum(len(at(p, t)) for p in counted if p.split == "held-out"),
            }
        )
    return out


def choose(photos: Sequence[Photo]) -> dict[str, float]:
    """The operating point from the tuning photos alone: midway between the strongest false face and
    the weakest real face (a labelled hit, or any face on the face-count photos) when the first is
    below the second; otherwise the lowest threshold, in steps of 0.1, at which no tuning false face is
    left."""
    tune_neg = [f.evidence for p in photos if p.negative and p.split == "tune" for f in p.before]
    worst_neg = max(tune_neg, default=0.0)
    weakest = min(
        (
            f.evidence
            for p in photos
            if not p.negative and p.split == "tune"
            for f in p.before
            if not p.faces or any(matches(face, f.box) for face in p.faces)
        ),
        default=1.0,
    )
    midpoint = round((worst_neg + weakest) / 2, 3)
    # where they overlap, the lowest threshold in steps of 0.1 with no false face on the tuning photos
    steps = [t for t in GRID if round(t * 100) % 10 == 0]
    clear = next((t for t in steps if all(f.evidence < t for f in tune_neg_faces(photos))), GRID[-1])
    chosen = midpoint if weakest > worst_neg else clear
    return {"strongest_false": worst_neg, "weakest_face": weakest, "midpoint": midpoint, "chosen": chosen}


def tune_neg_faces(photos: Sequence[Photo]) -> list[Found]:
    return [f for p in photos if p.negative and p.split == "tune" for f in p.before]


# -- report ----------------------------------------------------------------------------------------
def markdown(photos: Sequence[Photo], threshold: float) -> str:
    neg_groups = list(dict.fromkeys(p.group for p in photos if p.negative))
    pos_groups = list(dict.fromkeys(p.group for p in photos if not p.negative))
    lines = [
        "| photos without faces | split | runs | false faces before | after | ≥ 34 px before | after |",
        "|---|---|---|---|---|---|---|",
    ]
    for g in neg_groups:
        b, a = negative_row(g, photos, 0.0), negative_row(g, photos, None)
        lines.append(
            f"| {g} | {b['split']} | {b['runs']} | {b['false_faces']} | {a['false_faces']} "
            f"| {b['false_faces_34px']} | {a['false_faces_34px']} |"
        )
    lines += [
        "",
        "| photos with faces | split | labelled | hits before | after | found before | after |",
        "|---|---|---|---|---|---|---|",
    ]
    for g in pos_groups:
        b, a = positive_row(g, photos, 0.0), positive_row(g, photos, None)
        lab = b["labelled"] or "–"
        hits = (b["hits"], a["hits"]) if b["labelled"] else ("–", "–")
        found = f"{b['faces_found']} | {a['faces_found']}"
        lines.append(f"| {g} | {b['split']} | {lab} | {hits[0]} | {hits[1]} | {found} |")
    pick = choose(photos)
    lines += [
        "",
        f"Threshold in use: {threshold}. From the tuning photos: strongest false face "
        f"{pick['strongest_false']:.3f}, weakest real face {pick['weakest_face']:.3f}, midpoint "
        f"{pick['midpoint']:.3f}; chosen {pick['chosen']:.3f} (the midpoint where they separate, else the "
        "lowest threshold, in steps of 0.1, with no false face on them).",
        "",
        "| threshold | false faces, tune | held out | labelled hits, tune | held out "
        "| faces counted, tune | held out |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in curve(photos):
        if round(row["threshold"] * 100) % 10 == 0 or abs(row["threshold"] - threshold) < 1e-9:
            lines.append(
                f"| {row['threshold']:.2f} | {row['false_faces_tune']} | {row['false_faces_held_out']} "
                f"| {row['hits_tune']} | {row['hits_held_out']} "
                f"| {row['counted_tune']} | {row['counted_held_out']} |"
            )
    return "\n".join(lines)


def false_faces(photos: Sequence[Photo]) -> list[dict[str, Any]]:
    """Every face that verification lets through on a photo without faces (to look at)."""
    return [
        {"photo": str(p.path), "rotate": p.rotate, "box": [round(v) for v in (b.x, b.y, b.width, b.height)]}
        for p in photos
        if p.negative
        for b in p.after
    ]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--limit", type=int, default=None, help="at most this many tuxpaint stamps")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="write the curve and rows")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    labelled, names = labelled_robustness()
    photos = negatives(args.limit) + labelled + manifest_photos() + other_robustness(names)
    run(photos, args.model_dir)
    threshold = PipelineOptions().verify_threshold
    print(markdown(photos, threshold))
    leaks = false_faces(photos)
    print(f"\nFalse faces left: {len(leaks)}")
    for leak in leaks:
        print(f"  {leak}")
    if args.json is not None:
        neg_groups = dict.fromkeys(p.group for p in photos if p.negative)
        pos_groups = dict.fromkeys(p.group for p in photos if not p.negative)
        payload = {
            "threshold": threshold,
            "choice": choose(photos),
            "negatives": [[negative_row(g, photos, 0.0), negative_row(g, photos, None)] for g in neg_groups],
            "positives": [[positive_row(g, photos, 0.0), positive_row(g, photos, None)] for g in pos_groups],
            "curve": curve(photos),
            "false_faces": leaks,
            "evidence": [
                {
                    "photo": str(p.path),
                    "rotate": p.rotate,
                    "negative": p.negative,
                    "split": p.split,
                    "evidence": [round(f.evidence, 4) for f in p.before],
                }
                for p in photos
            ],
        }
        args.json.write_text(json.dumps(payload, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
