"""Faces followed across the frames of one video, with stable ids and smoothed points.

As MediaPipe's face landmarker does in its video mode, a face once found is *followed*: its next
crop comes from its previous landmarks (the mesh's own box in the face's rotated frame), so a
frame costs one mesh pass per face instead of every detector. The detectors run (``detect``):

* on the first frame, then every ``detect_every`` frames while faces are followed, to pick up new
  faces and to re-verify the followed ones: a followed face no detection confirms must pass the same
  two-detector verification as a photo's face (``verify.py``) or its track ends;
* every ``search_every`` frames while no face is followed (a frame without a face costs only the
  detectors, so a face entering an empty scene is found within that many frames);
* on any frame where a track is lost — the mesh's presence score on the followed crop fell below
  ``presence_threshold`` (the face left, was covered, or the crop slipped off it) — and on every frame
  for ``relink_frames`` frames after it. A face the detectors find where a lost track was, within that
  time, keeps its id; its filter starts again from the new points (no lag carried over the gap).

Each followed face's raw mesh is smoothed by a One Euro filter (``smoothing.py``) scaled to its
inter-ocular distance, and the 888 points, box and pose are built from the smoothed mesh; the next
crop still comes from the raw mesh (a filter's lag must not drag the crop behind the face).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from denseface.engine.detector import Detection, overlap
from denseface.engine.mesh import EYE_OUTER, roi_from_landmarks
from denseface.engine.pipeline import LARGEST_MARGIN, NESTED, FacePipeline, misaligned, overlaps
from denseface.engine.result import Box, Face, TrackedFace
from denseface.engine.smoothing import OneEuro, PointFilter

F32 = npt.NDArray[np.float32]
RGB = npt.NDArray[np.uint8]

DETECT_EVERY = 10
SEARCH_EVERY = 3
RELINK_FRAMES = 10


@dataclass(frozen=True)
class TrackerOptions:
    """``max_faces``: faces followed at most (1: only the largest, as Mode 1); ``rotate``: detection
    also looks for faces turned by 90/180/270°; ``detect_every``: detectors run every this many frames
    (≥ 1; 1 = on every frame) while faces are followed, and every ``search_every`` frames (at most
    ``detect_every``) while none is; ``relink_frames``: how long a lost track may be found again (and
    detection runs on every frame meanwhile; 0: only on the frame it was lost); ``smooth``: the
    filter's parameters, ``None`` for raw points."""

    max_faces: int = 5
    rotate: bool = False
    detect_every: int = DETECT_EVERY
    smooth: OneEuro | None = field(default_factory=OneEuro)
    search_every: int = SEARCH_EVERY
    relink_frames: int = RELINK_FRAMES

    def __post_init__(self) -> None:
        if self.max_faces < 1:
            raise ValueError(f"max_faces must be at least 1, not {self.max_faces!r}")
        for name in ("detect_every", "search_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)!r}")
        if self.relink_frames < 0:
            raise ValueError(f"relink_frames must be at least 0, not {self.relink_frames!r}")


@dataclass(eq=False)  # compared by identity
class _Track:
    id: int
    mesh: F32  # the last raw mesh: the next crop comes from it
    score: float
    presence: float
    evidence: float | None
    filter: PointFilter | None
    face: Face | None = None  # this frame's result
    lost_for: int = 0  # frames since it was lost (lost tracks only)


def interocular(mesh: F32) -> float:
    """Distance between the outer eye corners (mesh vertices 33, 263), in the mesh's units."""
    a, b = mesh[EYE_OUTER[0], :2], mesh[EYE_OUTER[1], :2]
    return float(math.hypot(float(b[0] - a[0]), float(b[1] - a[1])))


def _mesh_box(mesh: F32) -> Box:
    lo, hi = mesh[:, :2].min(axis=0), mesh[:, :2].max(axis=0)
    return Box(float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1]))


def _covers(box: Box, det: Detection) -> bool:
    """Whether a detection lies mostly inside a followed face's box (it is that face)."""
    corners = np.array([[box.x, box.y, box.x + box.width, box.y + box.height]], np.float32)
    return bool(overlap(np.array(det.box, np.float32), corners, over_smaller=True)[0] > NESTED)


class FaceTracker:
    """State across the frames of one video. Not thread-safe (one per video)."""

    def __init__(self, pipeline: FacePipeline, options: TrackerOptions | None = None) -> None:
        self.pipeline = pipeline
        self.options = options or TrackerOptions()
        self._tracks: list[_Track] = []
        self._lost: list[_Track] = []  # lost within the last relink_frames frames
        self._next_id = 0
        self._since_detection = 0
        self._time: float | None = None

    def reset(self) -> None:
        """Forget every track (a new video); ids keep counting up."""
        self._tracks = []
        self._lost = []
        self._since_detection = 0
        self._time = None

    def step(self, rgb: RGB, time: float) -> tuple[TrackedFace, ...]:
        """The faces of the next frame (RGB, ``time`` in seconds, increasing), largest first."""
        if self._time is not None and not time > self._time:
            raise ValueError(f"frame times must increase: {time!r} after {self._time!r}")
        first = self._time is None
        self._time = time
        opts = self.options
        lost = [t for t in self._tracks if not self._follow(rgb, t)]
        self._tracks = [t for t in self._tracks if t not in lost]
        for track in self._lost:
            track.lost_for += 1
        self._lost = [t for t in self._lost if t.lost_for <= opts.relink_frames] + lost
        self._since_detection += 1
        every = opts.detect_every if self._tracks else min(opts.search_every, opts.detect_every)
        new: list[_Track] = []
        if first or self._lost or self._since_detection >= every:
            self._since_detection = 0
            new = self._detect(rgb)
        for track in self._tracks:
            track.face = self._result(track, time)
        self._tracks += new
        self._tracks.sort(key=lambda t: _area(t.face), reverse=True)
        del self._tracks[opts.max_faces :]
        return tuple(TrackedFace(t.id, t.face, t in new) for t in self._tracks if t.face is not None)

    # -- following -----------------------------------------------------------------------------
    def _follow(self, rgb: RGB, track: _Track) -> bool:
        """The mesh on the crop from the track's previous landmarks; False when the face is lost."""
        mesh, opts = self.pipeline.mesh, self.pipeline.options
        roi = roi_from_landmarks(track.mesh)
        result = mesh.run(rgb, roi)
        if opts.refine and result.presence >= opts.presence_threshold:
            # fast motion: the crop lagged; one more pass on the crop from these landmarks
            again = roi_from_landmarks(result.points)
            if misaligned(roi, again):
                second = mesh.run(rgb, again)
                if second.presence >= result.presence:
                    result = second
        if result.presence < opts.presence_threshold:
            return False
        track.mesh, track.presence = result.points, result.presence
        return True

    def _result(self, track: _Track, time: float) -> Face:
        mesh = track.mesh
        if track.filter is not None:
            mesh = track.filter(mesh, time, interocular(track.mesh))
        return self.pipeline.build_face(mesh, track.score, track.presence, track.evidence)

    # -- detection -----------------------------------------------------------------------------
    def _detect(self, rgb: RGB) -> list[_Track]:
        """New faces, and the followed ones re-verified (tracks failing verification end). A new face
        where a track was lost (within ``relink_frames``) continues that track (its id)."""
        pipeline, opts = self.pipeline, self.options
        candidates = pipeline.detect(rgb, rotate=opts.rotate)
        boxes = {t.id: _mesh_box(t.mesh) for t in self._tracks}
        confirmed: set[int] = set()
        fresh: list[Detection] = []
        for det in candidates:
            owners = [t for t in self._tracks if _covers(boxes[t.id], det)]
            for track in owners:
                if track.id not in confirmed:  # the largest detection on it: its score
                    track.score = det.score
                    confirmed.add(track.id)
            if not owners:
                fresh.append(det)
        self._tracks = [t for t in self._tracks if t.id in confirmed or self._verified(rgb, t)]
        biggest = candidates[0].size if candidates else 0.0
        new: list[_Track] = []
        for det in fresh:
            room = len(self._tracks) + len(new) < opts.max_faces
            if not room and not (opts.max_faces == 1 and det.size >= LARGEST_MARGIN * biggest):
                continue
            face = pipeline.best_face(rgb, det)
            if face is None or any(overlaps(face.box, _mesh_box(t.mesh)) for t in [*self._tracks, *new]):
                continue
            track = self._start(face, [t for t in self._lost if overlaps(face.box, _mesh_box(t.mesh))])
            self._lost = [t for t in self._lost if t is not track]
            new.append(track)
        return new

    def _start(self, face: Face, lost: list[_Track]) -> _Track:
        """A track for a detected face: a lost one it continues (its id; the filter starts again from
        these points, so nothing from before the gap lags behind them), or a new id."""
        smoother = PointFilter(self.options.smooth) if self.options.smooth is not None else None
        if smoother is not None:
            smoother(face.mesh, self._time or 0.0, interocular(face.mesh))
        if lost:
            track = lost[0]
            track.mesh, track.score, track.presence = face.mesh, face.score, face.presence
            track.evidence, track.filter, track.face, track.lost_for = face.evidence, smoother, face, 0
            return track
        track = _Track(self._next_id, face.mesh, face.score, face.presence, face.evidence, smoother, face)
        self._next_id += 1
        return track

    def _verified(self, rgb: RGB, track: _Track) -> bool:
        verifier, need = self.pipeline.verifier, self.pipeline.options.verify_threshold
        if verifier is None or need <= 0.0:
            return True
        check = verifier.evidence(rgb, track.mesh, need)
        if check.total < need or check.upright is False:
            return False
        track.evidence = check.total
        return True


def _area(face: Face | None) -> float:
    return 0.0 if face is None else face.box.width * face.box.height
