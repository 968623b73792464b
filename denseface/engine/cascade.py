"""Face finding as a cascade: stages in order of cost, each run only when what the earlier ones found
leaves the answer unsure (``docs/face-finding.md`` has the measurements behind every number here).

An ordinary photo — clear, upright faces that one detector view finds with confidence — costs about
what MediaPipe's pipeline costs: one detector view (two when a face is large) and the mesh on each
face. In order:

1. **Full-range view** (always): BlazeFace full-range over the photo, scaled so the smallest face
   searched for is 10 px; with ``rotate`` also turned by 90°, 180° and 270°, and where views overlap
   the detection that scored highest gives the crop. Scores from 0.4 propose faces; fainter ones
   (from :data:`pipeline.WEAK_SCORE`) mark where a face may hide.
2. **Mesh on each proposal**, largest first, with the refining second pass where the first crop was
   off. A proposal is **sure** — a face, no verification — when the mesh sees a face (presence ≥
   :data:`SURE_PRESENCE`) where the detector put it (its box mostly inside the mesh's) and BlazeFace is
   confident: either model ≥ :data:`SURE_SCORE`, or both ≥ :data:`SURE_SUM`. Chosen on the tuning
   photos without faces of ``benchmarks/precision.py``: no proposal the mesh accepts there scores above
   0.79 on either model (a cartoon spider) or 1.445 on both (a cartoon lion); each threshold is one
   step above.
3. **Short-range view** (1.3 ms): before stage 2 when the largest proposal is large (the full-range
   model under-scores large, close faces, and the short-range crop of them rarely needs a second mesh
   pass), else only when a proposal is not sure or none was found.
4. **Verification** (``verify.py``) of each proposal that is not sure. With ``rotate`` every face is
   verified: a confident mesh can be fitted upside down on a face turned with the photo.
5. **A close look** (CenterFace on a crop) at each weak detection away from the faces, up to
   :data:`MAX_PROBES`: what it sees there is fitted and verified.
6. **The thorough search** (``Search.union``) when a doubt remains — no face found, a proposal neither
   sure nor verified, too many weak detections, a face cut by the frame: CenterFace over the view,
   every detector's proposals merged, alternatives tried, the turned views with ``rotate``. Faces
   already settled are kept and every run made so far is reused.

Only what can change the answer counts: in Mode 1 candidates smaller than half the largest detection
(they cannot be the largest face), in Mode 0 what comes after ``max_faces`` settled faces. Every
request's work has a ceiling: Mode 1 considers the :data:`MAX_RIVALS` largest detections, Mode 0 at
most ``max_faces`` × :data:`CANDIDATES_PER_FACE` + :data:`EXTRA_CANDIDATES` candidates. The profile
``exhaustive`` skips the cascade: stage 6 on every photo.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from denseface.engine.detector import Detection, iou, overlap
from denseface.engine.mesh import MeshResult, Roi
from denseface.engine.pipeline import LARGEST_MARGIN, NESTED, FacePipeline, Search, merge, overlaps
from denseface.engine.result import Box, Face

log = logging.getLogger(__name__)

RGB = npt.NDArray[np.uint8]

SURE_SCORE = 0.85  # a BlazeFace score (full- or short-range) that, with a confident mesh, makes a face sure
SURE_SUM = 1.55  # … or both models' scores together
SURE_PRESENCE = 0.9  # the mesh's face-presence probability for a sure face
LARGE_FACE = 0.125  # of the photo's longer side: ≥ 16 px in the short-range model's 128² input
MAX_PROBES = 3  # weak detections looked at one by one; more: the thorough search
PROBE_SCALE = 2.0  # the crop around a weak detection: this × its size
CUT = 0.02  # a face reaching this far (of its size) beyond the frame is cut by it
SAME_FACE_IOU = 0.3  # a short-range and a full-range detection of one face overlap at least this much
MAX_RIVALS = 10  # Mode 1: the largest detections considered for the largest face
CANDIDATES_PER_FACE = 2  # Mode 0: detections considered per face asked for …
EXTRA_CANDIDATES = 10  # … plus these


@dataclass
class _Proposal:
    det: Detection  # the crop to fit: the detection of the face that scored highest
    full: float  # full-range's score on it (0: not seen there)
    short: float = 0.0  # short-range's score on it (0: not seen there, or not run)
    fit: MeshResult | None = None


def run(pipeline: FacePipeline, rgb: RGB, *, max_faces: int, rotate: bool) -> list[Face]:
    """Up to ``max_faces`` faces (1: the largest), largest first (by the box of their 888 points)."""
    search = Search(pipeline, rgb)
    if pipeline.options.detector == "exhaustive":
        return _thorough(search, [], max_faces=max_faces, rotate=rotate)
    largest = max_faces == 1
    # 1. the full-range view (with ``rotate`` also turned by 90°, 180° and 270°: where views overlap the
    # detection that scored highest wins, so a face is cropped the way up it is)
    found = [d for k in (range(4) if rotate else (0,)) for d in search.full_range(k)]
    proposals = [_Proposal(d, d.score) for d in merge(found, pipeline.options.nms_iou)]
    biggest = _biggest(proposals)
    if biggest >= LARGE_FACE * max(rgb.shape[:2]) or not proposals:
        # the short-range view first when it can see a face: it scores large faces better and its crop
        # of them usually needs no second mesh pass
        proposals += _short_range(search, proposals)
        biggest = _biggest(proposals)
    # 2. the mesh on each proposal; the sure ones are faces
    faces: list[Face] = []
    # (with ``rotate`` every face is verified: a confident mesh can be fitted upside down on a face
    # turned with the photo, and verification's orientation check is what tells)
    pending = _settle(search, proposals, faces, largest, max_faces, biggest, verify=False, trust=not rotate)
    if pending or not faces:
        # 3. the short-range view (if not run yet): a second score, and large faces the first view missed
        fresh = [] if search.ran("short") else _short_range(search, proposals)
        biggest = max(biggest, _biggest(fresh))
        # 4. the proposals still not sure verified, each on its aligned crop
        pending = _settle(
            search, pending + fresh, faces, largest, max_faces, biggest, verify=True, trust=not rotate
        )
    weak = [] if pending or not faces else _weak_regions(search, faces, largest, max_faces, biggest)
    if 0 < len(weak) <= MAX_PROBES:
        # 5. a close look (CenterFace on a crop) where a weak detection lies away from the faces
        probes = [prop for w in weak if (prop := _probe(search, w)) is not None]
        pending = _settle(search, probes, faces, largest, max_faces, biggest, verify=True, trust=False)
        weak = []
    doubt = (
        "a proposal is not sure and not verified"
        if pending
        else "no face found"
        if not faces
        else f"{len(weak)} weak detections away from the faces"
        if weak
        else "a face is cut by the frame"
        if any(_cut(face, rgb.shape[1], rgb.shape[0]) for face in faces)
        else ""
    )
    if doubt:
        # 6. doubt remains: the thorough search, reusing every run made so far
        log.debug("thorough search: %s", doubt)
        return _thorough(search, faces, max_faces=max_faces, rotate=rotate)
    return _largest_first(faces, max_faces)


def _settle(
    search: Search,
    queue: list[_Proposal],
    faces: list[Face],
    largest: bool,
    max_faces: int,
    biggest: float,
    *,
    verify: bool,
    trust: bool,
) -> list[_Proposal]:
    """Fits the mesh on each proposal that can change the answer, largest first (``biggest``: the
    largest detection's size), and adds to ``faces`` the sure ones (with ``trust``) and the ones
    that pass verification (with ``verify``). Stops at the first that is neither and returns it with
    the ones not looked at yet (the next stage takes over from there); returns nothing when every
    proposal is settled."""
    ranked = sorted(queue, key=lambda p: p.det.size, reverse=True)
    for i, prop in enumerate(ranked[:MAX_RIVALS] if largest else ranked):
        if largest and prop.det.size < LARGEST_MARGIN * biggest:
            break  # cannot be the largest face
        if not largest and len(faces) >= max_faces:
            break  # smaller than max_faces faces already found
        if any(overlaps(face.box, _box(prop.det)) for face in faces):
            continue  # a face already found
        prop.fit = prop.fit or search.fit(prop.det)
        face = (
            search.pipeline.build_face(prop.fit.points, prop.det.score, prop.fit.presence)
            if trust and _sure(prop)
            else search.landmark(prop.det)
            if verify
            else None
        )
        if face is None:
            return ranked[i:]
        faces.append(face)
    return []


def _short_range(search: Search, proposals: list[_Proposal]) -> list[_Proposal]:
    """Runs the short-range view: each proposal it sees gets its score (and its crop, when it scored
    higher and the proposal is not fitted yet); returns its detections of faces not proposed yet."""
    fresh = []
    for det in search.short_range():
        same = [p for p in proposals if _same(det, p.det)]
        for prop in same:
            prop.short = max(prop.short, det.score)
            if prop.fit is None and det.score > prop.det.score:
                prop.det = det
        if not same:
            fresh.append(_Proposal(det, 0.0, det.score))
    return fresh


def _sure(prop: _Proposal) -> bool:
    """A face, without verification: a confident mesh where a confident detector put the face."""
    fit = prop.fit
    confident = max(prop.full, prop.short) >= SURE_SCORE or prop.full + prop.short >= SURE_SUM
    if fit is None or fit.presence < SURE_PRESENCE or not confident:
        return False
    lo, hi = fit.points[:, :2].min(axis=0), fit.points[:, :2].max(axis=0)
    mesh_box = np.array([lo[0], lo[1], hi[0], hi[1]], np.float32)
    inside = overlap(np.array(prop.det.box, np.float32), mesh_box[None], over_smaller=True)[0]
    return bool(inside >= NESTED)


def _weak_regions(
    search: Search, faces: list[Face], largest: bool, max_faces: int, biggest: float
) -> list[Detection]:
    """The weak full-range detections that could change the answer and lie away from every face."""
    if not largest and len(faces) >= max_faces:
        return []
    floor = LARGEST_MARGIN * biggest if largest else 0.0
    return [w for w in search.weak() if w.size >= floor and not any(overlaps(f.box, _box(w)) for f in faces)]


def _cut(face: Face, width: int, height: int) -> bool:
    """Whether a face reaches beyond the photo's frame (by :data:`CUT` of its size): the photo is
    framed tight around its faces, and another face cut by the frame may show too little of itself
    for BlazeFace."""
    box, margin = face.box, CUT * max(face.box.width, face.box.height)
    return (
        box.x < -margin
        or box.y < -margin
        or box.x + box.width > width + margin
        or box.y + box.height > height + margin
    )


def _probe(search: Search, weak: Detection) -> _Proposal | None:
    """CenterFace's look at an upright crop around a weak detection (:data:`PROBE_SCALE` × its size):
    a proposal where it sees a face (score ≥ ``score_threshold``), None where it sees none."""
    verifier = search.pipeline.verifier
    if verifier is None:
        return None
    x0, y0, x1, y1 = weak.box
    roi = Roi((x0 + x1) / 2.0, (y0 + y1) / 2.0, weak.size * PROBE_SCALE, 0.0)
    det = verifier.locate(search.rgb, roi)
    if det is None or det.score < search.pipeline.options.score_threshold:
        return None
    return _Proposal(det, 0.0)


def _thorough(search: Search, faces: list[Face], *, max_faces: int, rotate: bool) -> list[Face]:
    """Stage 4: every detector family and orientation, every candidate verified (the sure faces kept)."""
    candidates = search.union(rotate=rotate)
    if max_faces == 1 and candidates:
        # the largest face: every candidate close in size to the largest detection, up to MAX_RIVALS
        biggest = candidates[0].size
        candidates = [d for d in candidates[:MAX_RIVALS] if d.size >= LARGEST_MARGIN * biggest]
        wanted = len(candidates) + len(faces)
    else:
        candidates = candidates[: max_faces * CANDIDATES_PER_FACE + EXTRA_CANDIDATES]
        wanted = max_faces
    found = list(faces)
    for det in candidates:
        if len(found) >= wanted:
            break
        if any(overlaps(f.box, _box(det)) for f in found):
            continue
        face = search.best_face(search.fitted_first(det))
        if face is None or any(overlaps(face.box, f.box) for f in found):
            continue
        found.append(face)
    return _largest_first(found, max_faces)


def _largest_first(faces: list[Face], max_faces: int) -> list[Face]:
    return sorted(faces, key=lambda f: f.box.width * f.box.height, reverse=True)[:max_faces]


def _biggest(proposals: list[_Proposal]) -> float:
    return max((p.det.size for p in proposals), default=0.0)


def _same(a: Detection, b: Detection) -> bool:
    return float(iou(np.array(a.box, np.float32), np.array([b.box], np.float32))[0]) >= SAME_FACE_IOU


def _box(det: Detection) -> Box:
    x0, y0, x1, y1 = det.box
    return Box(x0, y0, x1 - x0, y1 - y0)
