"""The public library: ``analyze()`` and the reusable :class:`Analyzer`.

    >>> from denseface import Analyzer
    >>> analyzer = Analyzer()                      # loads and verifies the models once
    >>> faces = analyzer.analyze("group.jpg", mode=0, rotate=True)
    >>> [f.box for f in faces]

An :class:`Analyzer` is thread-safe: calls on one instance are serialised by a lock. For parallel
work create one Analyzer per thread (each holds its own LiteRT interpreters, ≈ 20 MB).

Video: :meth:`Analyzer.track` (or a :class:`Tracker` fed frame by frame) follows faces across frames
with stable ids and smoothed points (``engine/tracker.py``).

    >>> for frame in analyzer.track(rgb_frames, fps=30):    # or (time, rgb) pairs
    ...     [(f.id, f.face.points) for f in frame.faces]
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

from denseface.engine import cascade, models
from denseface.engine.centerface import CenterFace
from denseface.engine.decode import Decoded, ImageInput, load
from denseface.engine.detector import SHORT_RANGE, FaceDetector
from denseface.engine.full_range import FullRangeDetector
from denseface.engine.layout import default_layout
from denseface.engine.mesh import FaceMesh
from denseface.engine.pipeline import FacePipeline, ModelRuns, PipelineOptions
from denseface.engine.pose import PoseEstimator, load_canonical_model
from denseface.engine.result import Face, VideoFrame
from denseface.engine.smoothing import OneEuro
from denseface.engine.tracker import DETECT_EVERY, FaceTracker, TrackerOptions
from denseface.engine.verify import FaceVerifier

log = logging.getLogger(__name__)

MAX_FACES = 5


class Analyzer:
    """Holds the loaded models; ``analyze`` turns an image into a list of :class:`Face`."""

    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        num_threads: int = 1,
        options: PipelineOptions | None = None,
    ) -> None:
        paths = models.locate(Path(model_dir) if model_dir is not None else None)
        self.options = options or PipelineOptions()
        short_range = FaceDetector(paths[models.SHORT_RANGE.name], SHORT_RANGE, num_threads=num_threads)
        centerface = CenterFace(paths[models.CENTERFACE.name], num_threads=num_threads)
        self._pipeline = FacePipeline(
            FullRangeDetector(paths[models.FULL_RANGE.name], num_threads=num_threads),
            FaceMesh(paths[models.MESH.name], num_threads=num_threads),
            default_layout(),
            PoseEstimator(load_canonical_model(paths[models.GEOMETRY.name])),
            self.options,
            short_range=short_range,
            verifier=FaceVerifier(short_range, centerface),
            centerface=centerface,
        )
        self._lock = threading.Lock()
        log.debug("analyzer ready (models in %s)", paths[models.MESH.name].parent)

    def analyze(
        self, image: ImageInput | Decoded, *, mode: int = 0, rotate: bool = False, max_faces: int = MAX_FACES
    ) -> list[Face]:
        """Faces in ``image`` (a path, bytes, PIL image or RGB array), largest first.

        ``mode=0``: up to ``max_faces`` faces (default 5, as AnalyzeDenseLandmarks; AnalyzeFace returns
        up to 10); ``mode=1``: only the largest. ``rotate=True`` also finds faces turned by 90°, 180° or
        270°. No face gives an empty list. Raises :class:`denseface.ImageError` subclasses for
        unreadable images.
        """
        if mode not in (0, 1):
            raise ValueError(f"mode must be 0 (up to max_faces faces) or 1 (largest face), not {mode!r}")
        if max_faces < 1:
            raise ValueError(f"max_faces must be at least 1, not {max_faces!r}")
        decoded = image if isinstance(image, Decoded) else load(image)
        with self._lock:
            faces = cascade.run(
                self._pipeline, decoded.rgb, max_faces=1 if mode == 1 else max_faces, rotate=rotate
            )
        return faces[:1] if mode == 1 else faces

    def model_runs(self) -> ModelRuns:
        """How many times each model has run in this Analyzer so far: the difference around a call is
        what that photo cost (``benchmarks/speed.py`` reports it per photo)."""
        with self._lock:
            return self._pipeline.runs()

    def track(
        self,
        frames: Iterable[npt.NDArray[np.uint8] | tuple[float, npt.NDArray[np.uint8]]],
        *,
        fps: float = 30.0,
        mode: int = 0,
        rotate: bool = False,
        max_faces: int = MAX_FACES,
        smooth: bool | OneEuro = True,
        detect_every: int = DETECT_EVERY,
    ) -> Iterator[VideoFrame]:
        """The frames of one video (RGB arrays, timed ``index / fps``, or ``(seconds, rgb)`` pairs) with
        their faces followed: see :class:`Tracker` for the options."""
        tracker = Tracker(
            self, mode=mode, rotate=rotate, max_faces=max_faces, smooth=smooth, detect_every=detect_every
        )
        for i, item in enumerate(frames):
            time, rgb = item if isinstance(item, tuple) else (i / fps, item)
            yield tracker.update(rgb, time)


class Tracker:
    """Faces followed across the frames of one video: stable ids, smoothed points.

    ``mode`` 0 follows up to ``max_faces`` faces, 1 only the largest; ``rotate`` lets detection find
    faces turned by 90/180/270°; ``detect_every``: the detectors run on the first frame, every this
    many frames (new faces appear within it) and whenever a track is lost; in between each face's crop
    comes from its previous landmarks. ``smooth``: the One Euro filter on the points (``True``: the
    documented defaults of :class:`~denseface.engine.smoothing.OneEuro`; ``False``: raw points).
    Frames go through the ``analyzer``'s lock (a shared default one when ``None``).
    """

    def __init__(
        self,
        analyzer: Analyzer | None = None,
        *,
        mode: int = 0,
        rotate: bool = False,
        max_faces: int = MAX_FACES,
        smooth: bool | OneEuro = True,
        detect_every: int = DETECT_EVERY,
    ) -> None:
        if mode not in (0, 1):
            raise ValueError(f"mode must be 0 (up to max_faces faces) or 1 (largest face), not {mode!r}")
        self.analyzer = analyzer if analyzer is not None else default_analyzer()
        params = smooth if isinstance(smooth, OneEuro) else (OneEuro() if smooth else None)
        self.options = TrackerOptions(
            max_faces=1 if mode == 1 else max_faces, rotate=rotate, detect_every=detect_every, smooth=params
        )
        self._tracker = FaceTracker(self.analyzer._pipeline, self.options)
        self._index = 0

    def update(self, rgb: npt.NDArray[np.uint8], time: float) -> VideoFrame:
        """The next frame (H×W×3 uint8 RGB) at ``time`` seconds (increasing): its faces, largest first."""
        frame = np.asarray(rgb)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"a frame must be an H×W×3 uint8 RGB array, not {frame.dtype} {frame.shape}")
        with self.analyzer._lock:
            faces = self._tracker.step(np.ascontiguousarray(frame), float(time))
        result = VideoFrame(self._index, float(time), faces)
        self._index += 1
        return result

    def reset(self) -> None:
        """Start a new video: every track ends (new faces get new ids) and frame indices restart."""
        self._tracker.reset()
        self._index = 0


_default: Analyzer | None = None
_default_lock = threading.Lock()


def default_analyzer() -> Analyzer:
    """A process-wide Analyzer, created on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Analyzer()
        return _default


def analyze(
    image: ImageInput, *, mode: int = 0, rotate: bool = False, max_faces: int = MAX_FACES
) -> list[Face]:
    """``Analyzer().analyze`` on a shared, lazily created Analyzer."""
    return default_analyzer().analyze(image, mode=mode, rotate=rotate, max_faces=max_faces)
