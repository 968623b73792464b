"""The One Euro filter (Casiez, Roussel, Vogel, CHI 2012) on a set of points, scaled to the face size.

Each point is low-pass filtered with a cutoff frequency that rises with its speed: a still face is
smoothed hard (``min_cutoff``), a moving one follows with little lag (``beta`` × speed). The speed is
measured in **face sizes per second** (the face's inter-ocular distance, taken from the raw points of
the same frame), so the filter does the same to a face of 60 px and of 600 px, at any resolution.
Time comes from the caller's timestamps (seconds), so variable frame rates are filtered correctly.

For a step of ``dt`` seconds and a cutoff ``fc`` (Hz) the smoothing factor is
``alpha = 1 / (1 + 1 / (2π·fc·dt))``; the speed is itself smoothed with ``derivative_cutoff``.

Which speed raises the cutoff (``speed``): ``"face"`` (the default) is the face's own motion — the
velocity of the raw points' centroid from one frame to the next — and gives every point the same
cutoff; ``"point"`` is the paper's, each point's distance from its own filtered value. A face's
centroid averages the landmarks' noise away, so at rest its speed is near zero while a moving face's
is its true speed from the first frame of the motion: ``beta`` can be larger (less lag) for the same
steadiness at rest.

A face covered or blurred for a moment (a hand passing) makes its points jump *apart from* the face's
motion; talking moves a few of them. With the face's speed, the filter also measures that deformation
— the median over the points of their motion apart from the centroid's, in face sizes per second —
and divides the cutoff by ``1 + deformation × that``: a one-frame glitch is smoothed hard (a
deformation that lasts is followed a frame later), a rigid motion is followed as without the term,
a talking mouth changes the median little. It also smooths a noisier mesh (a dark, grainy camera)
harder, so such a face lags more in motion; ``deformation=0`` turns it off. (``speed="point"``
ignores ``deformation``.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
SPEEDS = ("face", "point")


@dataclass(frozen=True)
class OneEuro:
    """Filter parameters. The defaults were chosen by ``benchmarks/video.py --tune face_noface.mov``
    (that clip alone, as recorded and sliding sideways): among the settings with jitter ≤ 0.40× per-frame
    ``analyze`` and a mean distance to it ≤ 1% of the inter-ocular distance, the one that lags least
    in fast motion (docs/stream.md "The tracker"; the paper's per-point speed, the earlier default
    ``OneEuro(1.0, 3.0, 1.0, "point")``, lags 2.3× more there).

    ``min_cutoff``: cutoff (Hz) of a still point — lower is smoother and lags more;
    ``beta``: how much the cutoff rises per face size per second of speed (Hz·s per face size) —
    higher follows fast motion with less lag; ``derivative_cutoff``: cutoff (Hz) of the speed estimate;
    ``speed``: whose speed raises the cutoff, the face's (``"face"``) or each point's (``"point"``);
    ``deformation``: how much the points' motion apart from the face's lowers the cutoff (per face size
    per second; 0: not at all).
    """

    min_cutoff: float = 0.75
    beta: float = 20.0
    derivative_cutoff: float = 2.0
    speed: str = "face"
    deformation: float = 10.0

    def __post_init__(self) -> None:
        if not (self.min_cutoff > 0 and self.derivative_cutoff > 0 and self.beta >= 0):
            raise ValueError("One Euro cutoffs must be > 0 and beta >= 0")
        if not self.deformation >= 0:
            raise ValueError("deformation must be >= 0")
        if self.speed not in SPEEDS:
            raise ValueError(f"speed must be one of {', '.join(SPEEDS)}, not {self.speed!r}")


def _alpha(cutoff: F64 | float, dt: float) -> F64:
    return np.asarray(1.0 / (1.0 + 1.0 / (2.0 * math.pi * np.asarray(cutoff) * dt)), np.float64)


class PointFilter:
    """One Euro state for an (n, d) array of points (the speed is measured over the first two
    coordinates, so x, y and a z alongside them share one cutoff per point)."""

    def __init__(self, params: OneEuro) -> None:
        self.params = params
        self._value: F64 | None = None
        self._speed: F64 | None = None
        self._raw: F64 | None = None  # the raw points on the last frame
        self._time = 0.0

    def __call__(self, points: F32, time: float, scale: float) -> F32:
        """The filtered points for raw ``points`` at ``time`` (seconds); ``scale``: the face size in the
        points' units (px), > 0."""
        x = points.astype(np.float64)
        if self._value is None or self._speed is None or self._raw is None or time <= self._time:
            face = self.params.speed == "face"
            self._value, self._time, self._raw = x, time, x
            self._speed = np.zeros(2) if face else np.zeros_like(x)
            return points.astype(np.float32)
        dt = time - self._time
        p = self.params
        size = max(scale, 1e-6)
        if p.speed == "face":  # the face's own motion: its raw centroid, frame to frame
            motion = (x[:, :2] - self._raw[:, :2]) / dt  # each point's, px/s
            speed = motion.mean(axis=0)  # the centroid's
            self._speed = self._speed + _alpha(p.derivative_cutoff, dt) * (speed - self._speed)
            rate: F64 | float = float(np.linalg.norm(self._speed)) / size  # face sizes per second
            apart = motion - speed  # each point's motion apart from the face's
            deform = float(np.median(np.linalg.norm(apart, axis=1))) / size
            cutoff: F64 | float = (p.min_cutoff + p.beta * rate) / (1.0 + p.deformation * deform)
        else:  # each point's distance from its filtered value (Casiez et al.)
            speed = (x - self._value) / dt
            self._speed = self._speed + _alpha(p.derivative_cutoff, dt) * (speed - self._speed)
            rate = np.linalg.norm(self._speed[:, :2], axis=1, keepdims=True) / size
            cutoff = p.min_cutoff + p.beta * rate
        a = _alpha(cutoff, dt)
        self._value = self._value + a * (x - self._value)
        self._time, self._raw = time, x
        return self._value.astype(np.float32)
