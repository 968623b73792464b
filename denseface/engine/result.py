"""Frozen, typed results.

Coordinates are image pixels in the *oriented* frame of the input (after EXIF orientation), with
the origin at the top-left corner of the top-left pixel; x grows to the right, y downwards.
"Left" and "right" are as seen in the image (``LeftEye`` is the eye on the image's left).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from denseface.engine.layout import REGION_SLICES, SHAPE90_SLICES, ibug68_from_mesh, shape90_from_mesh

FloatArray = npt.NDArray[np.float32]


def _frozen(array: npt.ArrayLike, shape: tuple[int, ...]) -> FloatArray:
    out = np.array(array, dtype=np.float32)
    if out.shape != shape:
        raise ValueError(f"expected shape {shape}, got {out.shape}")
    out.setflags(write=False)
    return out


@dataclass(frozen=True)
class Box:
    """Axis-aligned face box in image pixels (top-left corner, size)."""

    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Pose:
    """Head pose in degrees: yaw > 0 turns toward the image's right, pitch > 0 looks up, roll > 0
    tilts the head clockwise in the image."""

    yaw: float
    pitch: float
    roll: float


@dataclass(frozen=True, eq=False)  # arrays inside: identity, not element-wise, equality
class Face:
    """One face: its box, detector score, the 888 dense points, the raw 478-point mesh and pose.

    ``points`` is an (888, 2) float32 array in the region order of :data:`REGION_NAMES`;
    ``regions`` gives read-only views into it by name. ``mesh`` is MediaPipe's (478, 3) mesh in
    image pixels (z in the same scale as x, relative to the face centre, smaller = closer).
    """

    box: Box
    score: float
    points: FloatArray
    mesh: FloatArray
    pose: Pose
    presence: float = 1.0
    #: the second opinion on the aligned crop (BlazeFace short-range score, plus CenterFace's when
    #: that alone is below the threshold); ``None`` when verification is off
    evidence: float | None = None
    _regions: Mapping[str, FloatArray] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        points = _frozen(self.points, (888, 2))
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "mesh", _frozen(self.mesh, (478, 3)))
        regions = {name: points[sl] for name, sl in REGION_SLICES.items()}
        object.__setattr__(self, "_regions", MappingProxyType(regions))

    @property
    def regions(self) -> Mapping[str, FloatArray]:
        """Region name → (n, 2) points, in the fixed region order."""
        return self._regions

    def to_ibug68(self) -> FloatArray:
        """The 68 points of the 300-W (iBUG) scheme, from the 888 layout and the mesh (data/layout.json)."""
        return ibug68_from_mesh(self.mesh[:, :2], self.points)

    def shape90(self) -> Mapping[str, FloatArray]:
        """Tencent's ``AnalyzeFace`` 90 points: region name (``FaceProfile``, ``LeftEye``, ``RightEye``,
        ``LeftEyeBrow``, ``RightEyeBrow``, ``Mouth``, ``Nose``, ``LeftPupil``, ``RightPupil``) → read-only
        (n, 2) points (21, 8, 8, 8, 8, 22, 13, 1, 1), chosen from the 888 layout and the mesh
        (``denseface/data/shape90.json``)."""
        points = shape90_from_mesh(self.mesh[:, :2], self.points)
        points.setflags(write=False)
        return MappingProxyType({name: points[sl] for name, sl in SHAPE90_SLICES.items()})


@dataclass(frozen=True, eq=False)
class TrackedFace:
    """A face followed across the frames of a video: ``id`` stays the same while it is visible (a
    face that leaves and comes back gets a new one). ``face`` holds the (smoothed) points;
    ``detected``: whether this frame's result came from a detection (a new track, or one lost on this
    frame and found again) rather than from following the face."""

    id: int
    face: Face
    detected: bool = False


@dataclass(frozen=True, eq=False)
class VideoFrame:
    """One frame of a tracked video: its index, timestamp (seconds) and faces, largest first."""

    index: int
    time: float
    faces: tuple[TrackedFace, ...]
