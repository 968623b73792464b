"""Head pose from the mesh: a scaled rigid fit (Kabsch/Umeyama) of MediaPipe's canonical face model.

The canonical model comes from ``geometry_pipeline_metadata_landmarks.binarypb`` in the
FaceLandmarker bundle (468 vertices, centimetres, x to the subject's left... as MediaPipe defines
it). The file is a small protobuf; the few fields needed are read with a minimal wire-format reader
so that protobuf is not a dependency.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import numpy.typing as npt

from denseface.engine.result import Pose
from denseface.errors import ModelsMissingError

F64 = npt.NDArray[np.float64]

VERTEX_STRIDE = 5  # x, y, z, u, v
CANONICAL_VERTICES = 468


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, int, bytes | int]]:
    """(field number, wire type, value) for each top-level field of a protobuf message."""
    out: list[tuple[int, int, bytes | int]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            out.append((number, wire, value))
        elif wire == 1:
            out.append((number, wire, buf[pos : pos + 8]))
            pos += 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            out.append((number, wire, buf[pos : pos + length]))
            pos += length
        elif wire == 5:
            out.append((number, wire, buf[pos : pos + 4]))
            pos += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    return out


def load_canonical_model(path: Path) -> F64:
    """(468, 3) canonical face vertices from the geometry metadata protobuf."""
    try:
        mesh = next(v for n, w, v in _fields(path.read_bytes()) if n == 1 and w == 2)
        floats: list[float] = []
        for number, wire, value in _fields(mesh if isinstance(mesh, bytes) else b""):
            if number != 3 or not isinstance(value, bytes):
                continue
            if wire == 5:
                floats.append(struct.unpack("<f", value)[0])
            elif wire == 2:  # packed
                floats.extend(struct.unpack(f"<{len(value) // 4}f", value))
    except (OSError, StopIteration, ValueError, IndexError, struct.error) as exc:
        raise ModelsMissingError(f"cannot read the canonical face model {path}: {exc}") from exc
    vertices = np.array(floats, dtype=np.float64).reshape(-1, VERTEX_STRIDE)[:, :3]
    if vertices.shape[0] != CANONICAL_VERTICES:
        raise ModelsMissingError(
            f"{path}: {vertices.shape[0]} canonical vertices, expected {CANONICAL_VERTICES}"
        )
    return vertices


class PoseEstimator:
    """Yaw, pitch and roll (degrees) of a face mesh in image pixels."""

    def __init__(self, canonical: F64) -> None:
        self._model = canonical - canonical.mean(axis=0)

    def estimate(self, mesh: npt.ArrayLike) -> Pose:
        """Scaled-orthographic fit of the canonical model to the mesh's 2D points.

        Only x and y are used: the mesh's z is relative and less reliable than its image position."""
        pts = np.asarray(mesh, dtype=np.float64)[:CANONICAL_VERTICES, :2]
        # image frame (x right, y down) → model frame (x right, y up)
        observed = pts * np.array([1.0, -1.0])
        observed = observed - observed.mean(axis=0)
        affine, *_ = np.linalg.lstsq(self._model, observed, rcond=None)  # (3, 2): model → image
        r1, r2 = affine[:, 0], affine[:, 1]
        # nearest pair of orthonormal rows (polar decomposition of the 2×3 block)
        u, _, vt = np.linalg.svd(np.stack([r1, r2]), full_matrices=False)
        rows = u @ vt
        rot = np.vstack([rows, np.cross(rows[0], rows[1])])
        pitch = math.degrees(math.atan2(rot[2, 1], rot[2, 2]))
        yaw = math.degrees(math.asin(max(-1.0, min(1.0, -rot[2, 0]))))
        roll = math.degrees(math.atan2(rot[1, 0], rot[0, 0]))
        return Pose(yaw=round(yaw, 2), pitch=round(pitch, 2), roll=round(-roll, 2))
