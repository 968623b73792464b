"""The 888-point layout: 14 named regions built on the 478-point mesh.

The table lives in ``denseface/data/layout.json``; this module compiles it once into linear
operators (Catmull-Rom weights) so that building the 888 points of a face is a few small matrix
products plus one arc-length resampling per part.

Conventions: left/right as seen in the image for an upright face; closed contours do not repeat
their first point; points are evenly spaced by arc length within each part (so anatomical anchors
such as eye corners keep fixed indices, e.g. ``LeftEye[0]`` is the outer corner and ``LeftEye[32]``
the inner one).
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

SUBDIVISIONS = 8  # dense samples per mesh edge before arc-length resampling


def _load() -> dict[str, Any]:
    text = resources.files("denseface.data").joinpath("layout.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


_TABLE = _load()
REGION_NAMES: tuple[str, ...] = tuple(r["name"] for r in _TABLE["regions"])
REGION_COUNTS: dict[str, int] = {
    r["name"]: int(r.get("count") or sum(p["count"] for p in r["parts"])) for r in _TABLE["regions"]
}
REGION_CLOSED: dict[str, bool] = {r["name"]: bool(r.get("closed", "iris" in r)) for r in _TABLE["regions"]}
TOTAL_POINTS = sum(REGION_COUNTS.values())


def _slices() -> dict[str, slice]:
    out, start = {}, 0
    for name in REGION_NAMES:
        out[name] = slice(start, start + REGION_COUNTS[name])
        start += REGION_COUNTS[name]
    return out


REGION_SLICES: dict[str, slice] = _slices()
if TOTAL_POINTS != 888:  # pragma: no cover - guards the data file
    raise RuntimeError(f"layout.json defines {TOTAL_POINTS} points, not 888")


def catmull_rom_weights(n: int, closed: bool, sub: int = SUBDIVISIONS) -> F64:
    """Matrix W so that W @ P samples the uniform Catmull-Rom curve through the n points P.

    Open curves get reflected end tangents and include their last point."""
    segments = n if closed else n - 1
    t = np.arange(sub) / sub
    basis = 0.5 * np.stack(
        [-(t**3) + 2 * t**2 - t, 3 * t**3 - 5 * t**2 + 2, -3 * t**3 + 4 * t**2 + t, t**3 - t**2], axis=1
    )
    rows = np.zeros((segments * sub + (0 if closed else 1), n))
    for seg in range(segments):
        idx = [seg - 1, seg, seg + 1, seg + 2]
        block = rows[seg * sub : (seg + 1) * sub]
        for k, j in enumerate(idx):
            if closed:
                block[:, j % n] += basis[:, k]
            elif 0 <= j < n:
                block[:, j] += basis[:, k]
            elif j < 0:  # reflected start: P(-1) = 2 P0 - P1
                block[:, 0] += 2 * basis[:, k]
                block[:, 1] -= basis[:, k]
            else:  # reflected end: P(n) = 2 P(n-1) - P(n-2)
                block[:, n - 1] += 2 * basis[:, k]
                block[:, n - 2] -= basis[:, k]
    if not closed:
        rows[-1, n - 1] = 1.0
    return rows


def resample(poly: F64, count: int, *, include_end: bool) -> F64:
    """``count`` points evenly spaced by arc length along an open polyline."""
    seg = np.linalg.norm(np.diff(poly, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    total = cum[-1]
    if total <= 1e-9:
        return np.repeat(poly[:1], count, axis=0)
    steps = count - 1 if include_end else count
    targets = np.arange(count) * (total / max(steps, 1))
    return np.stack([np.interp(targets, cum, poly[:, 0]), np.interp(targets, cum, poly[:, 1])], axis=1)


@lru_cache(maxsize=64)
def _closed_weights(n: int) -> F64:
    return catmull_rom_weights(n, closed=True)


@dataclass(frozen=True)
class _Oval:
    """Dense closed face outline with its crossings of the eye line."""

    dense: F64  # (M, 2), clockwise on screen: top → image right → chin → image left
    left: float  # fractional index of the image-left crossing
    right: float
    anchors: dict[int, float]  # mesh vertex → fractional index
    axis: F64  # unit vector along the eye line (image-left eye → image-right eye)

    def point(self, at: float) -> F64:
        m = len(self.dense)
        i = math.floor(at) % m
        f = at - math.floor(at)
        return np.asarray((1 - f) * self.dense[i] + f * self.dense[(i + 1) % m], dtype=np.float64)

    def arc(self, start: float, stop: float, *, backwards: bool) -> F64:
        """Dense points from ``start`` to ``stop`` (fractional indices), walking either way round."""
        m = len(self.dense)
        if backwards:
            if stop >= start:
                stop -= m
            inner = np.arange(math.ceil(start) - 1, math.floor(stop), -1)
        else:
            if stop <= start:
                stop += m
            inner = np.arange(math.floor(start) + 1, math.ceil(stop))
        mid = self.dense[inner % m]
        return np.concatenate([self.point(start)[None], mid, self.point(stop)[None]])


class _StaticParts:
    """Every part that is a fixed chain of mesh vertices, evaluated in one batch: one gather and
    weighted sum for all the splines (each dense sample mixes at most four control points, so the
    block-diagonal spline matrix is kept as its four non-zeros a row), one interpolation for all the
    arc-length resampling."""

    def __init__(self, parts: list[tuple[list[int], int, bool, int]]) -> None:
        weights = [catmull_rom_weights(len(chain), closed=False) for chain, _, _, _ in parts]
        rows = np.cumsum([0] + [w.shape[0] for w in weights])
        cols = np.cumsum([0] + [w.shape[1] for w in weights])
        matrix = np.zeros((rows[-1], cols[-1]))
        for w, r, c in zip(weights, rows[:-1], cols[:-1], strict=True):
            matrix[r : r + w.shape[0], c : c + w.shape[1]] = w
        vertices = np.concatenate([chain for chain, _, _, _ in parts])
        # per dense row: the mesh vertices of its (at most 4) non-zero weights, and those weights
        taps = max(int(np.count_nonzero(row)) for row in matrix)
        self._taps = np.zeros((len(matrix), taps), np.intp)
        self._tap_weights = np.zeros((len(matrix), taps))
        for i, row in enumerate(matrix):
            nz = np.flatnonzero(row)
            self._taps[i, : len(nz)] = vertices[nz]
            self._tap_weights[i, : len(nz)] = row[nz]
        self._first, self._last = rows[:-1], rows[1:] - 1  # dense rows where each part starts / ends
        part_id = np.concatenate([np.full(count, i) for i, (_, count, _, _) in enumerate(parts)])
        self._part_id = part_id
        self._step = np.concatenate([np.arange(count) for _, count, _, _ in parts])
        self._steps = np.array([max(1, count - 1 if end else count) for _, count, end, _ in parts], float)
        self._where = np.concatenate([np.arange(start, start + count) for _, count, _, start in parts])

    def build(self, xy: F64, out: F64) -> None:
        dense = np.einsum("rk,rkd->rd", self._tap_weights, xy[self._taps])
        seg = np.linalg.norm(np.diff(dense, axis=0), axis=1)
        seg[self._last[:-1]] = 1.0  # a gap between parts keeps the cumulative length increasing
        cum = np.concatenate([[0.0], np.cumsum(seg)])
        start, stop = cum[self._first], cum[self._last]
        t = start[self._part_id] + self._step * ((stop - start) / self._steps)[self._part_id]
        out[self._where, 0] = np.interp(t, cum, dense[:, 0])
        out[self._where, 1] = np.interp(t, cum, dense[:, 1])


class Layout:
    """Compiled layout: ``build(mesh_xy) -> (888, 2)``."""

    def __init__(self, table: dict[str, Any]) -> None:
        self._silhouette = np.array(table["silhouette"])
        self._eye_line = tuple(table["eye_line"])
        self._chains: dict[tuple[Any, ...], F64] = {}
        self._regions = table["regions"]
        self._anchor_vertices = sorted(
            {
                v
                for r in self._regions
                for p in r.get("parts", [])
                for v in p.get("oval", [])
                if isinstance(v, int)
            }
        )
        self._dynamic: list[tuple[dict[str, Any], dict[str, Any] | None, bool, slice]] = []
        static: list[tuple[list[int], int, bool, int]] = []  # chain, count, include_end, output start
        cursor = 0
        for region in self._regions:
            if "iris" in region:
                self._dynamic.append((region, None, False, slice(cursor, cursor + region["count"])))
                cursor += region["count"]
                continue
            parts = region["parts"]
            for k, part in enumerate(parts):
                include_end = bool(part.get("end", False)) or (k == len(parts) - 1 and not region["closed"])
                chain = part.get("chain", [])
                if chain and all(isinstance(v, int) for v in chain):
                    static.append((chain, part["count"], include_end, cursor))
                else:
                    if chain:
                        self._chains[tuple(chain)] = catmull_rom_weights(len(chain), closed=False)
                    self._dynamic.append((region, part, include_end, slice(cursor, cursor + part["count"])))
                cursor += part["count"]
        self._static = _StaticParts(static)
        self._ibug68 = Selection(table["ibug68"]["points"])

    def _outline(self, xy: F64) -> F64:
        """The visible face outline: convex hull of the silhouette vertices, clockwise on screen."""
        candidates = xy[self._silhouette]
        hull = cv2.convexHull(candidates.astype(np.float32), returnPoints=False).ravel()
        ring = candidates[np.sort(hull)] if len(hull) < 3 else candidates[hull]
        x, y = ring[:, 0], ring[:, 1]
        if float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y)) < 0:
            ring = ring[::-1]
        return np.asarray(_closed_weights(len(ring)) @ ring, dtype=np.float64)

    def _oval(self, xy: F64) -> _Oval:
        dense = self._outline(xy)
        a, b = xy[self._eye_line[0]], xy[self._eye_line[1]]
        axis = (b - a) / max(float(np.linalg.norm(b - a)), 1e-9)
        down = np.array([-axis[1], axis[0]])
        rel = dense - (a + b) / 2.0
        level, u = rel @ down, rel @ axis  # below the eye line, along it
        nxt = np.roll(np.arange(len(dense)), -1)
        crosses = np.flatnonzero(((level <= 0) & (level[nxt] > 0)) | ((level[nxt] <= 0) & (level > 0)))
        if len(crosses) >= 2:
            frac = level[crosses] / (level[crosses] - level[nxt[crosses]])
            along = u[crosses] + frac * (u[nxt[crosses]] - u[crosses])
            left = float(crosses[np.argmin(along)] + frac[np.argmin(along)])
            right = float(crosses[np.argmax(along)] + frac[np.argmax(along)])
        else:  # extreme pitch: fall back to the outline's widest points
            left, right = float(np.argmin(u)), float(np.argmax(u))
        anchors = {v: float(np.argmin(np.linalg.norm(dense - xy[v], axis=1))) for v in self._anchor_vertices}
        return _Oval(dense, left, right, anchors, axis)

    def _polyline(self, part: dict[str, Any], xy: F64, oval: _Oval) -> F64:
        if "oval" in part:
            named = {"left": oval.left, "right": oval.right}
            stops = [named[s] if isinstance(s, str) else oval.anchors[s] for s in part["oval"]]
            backwards = bool(part.get("backwards", False))
            return np.concatenate([oval.arc(a, b, backwards=backwards) for a, b in itertools.pairwise(stops)])
        chain = part["chain"]
        ends = {"left": oval.point(oval.left), "right": oval.point(oval.right)}
        ctrl = np.stack([ends[c] if isinstance(c, str) else xy[c] for c in chain])
        return np.asarray(self._chains[tuple(chain)] @ ctrl, dtype=np.float64)

    def build(self, mesh_xy: npt.ArrayLike) -> F32:
        """888 points from a (478, 2+) mesh in image pixels."""
        xy = np.asarray(mesh_xy, dtype=np.float64)[:, :2]
        out = np.empty((TOTAL_POINTS, 2), np.float64)
        self._static.build(xy, out)
        oval = self._oval(xy)
        for region, part, include_end, where in self._dynamic:
            if part is None:
                out[where] = _iris(xy, region["iris"], region["count"], oval.axis)
            else:
                out[where] = resample(self._polyline(part, xy, oval), part["count"], include_end=include_end)
        return out.astype(np.float32)

    def ibug68(self, mesh_xy: F32, points: F32) -> F32:
        return self._ibug68.pick(mesh_xy, points)


class Selection:
    """A fixed choice of points from a face's 888 layout and mesh: a list of ``[region, index]`` (into
    the 888 points) or ``["mesh", vertex]``, as the 68-point mapping and the 90-point table write it."""

    def __init__(self, refs: list[list[Any]]) -> None:
        for name, i in refs:
            size = 478 if name == "mesh" else REGION_COUNTS.get(name, 0)
            if not 0 <= int(i) < size:
                raise ValueError(f"no point {name}[{i}] in the 888 layout or the mesh")
        self._from_mesh = np.array([name == "mesh" for name, _ in refs])
        self._index = np.array(
            [int(i) if name == "mesh" else REGION_SLICES[name].start + int(i) for name, i in refs]
        )

    def __len__(self) -> int:
        return len(self._index)

    def pick(self, mesh_xy: F32, points: F32) -> F32:
        """The chosen points, (n, 2), from a face's (478, 2+) mesh and its (888, 2) points."""
        out = np.where(
            self._from_mesh[:, None],
            mesh_xy[np.where(self._from_mesh, self._index, 0), :2],
            points[np.where(self._from_mesh, 0, self._index)],
        )
        return np.asarray(out, dtype=np.float32)


def _load_shape90() -> tuple[tuple[str, ...], dict[str, slice], Selection]:
    text = resources.files("denseface.data").joinpath("shape90.json").read_text(encoding="utf-8")
    regions = json.loads(text)["regions"]
    names = tuple(str(r["name"]) for r in regions)
    slices, start = {}, 0
    for r in regions:
        slices[r["name"]] = slice(start, start + len(r["points"]))
        start += len(r["points"])
    return names, slices, Selection([ref for r in regions for ref in r["points"]])


#: Tencent's AnalyzeFace ``FaceShape``: 90 points in 9 regions (``denseface/data/shape90.json``)
SHAPE90_NAMES, SHAPE90_SLICES, _SHAPE90 = _load_shape90()
if len(_SHAPE90) != 90:  # pragma: no cover - guards the data file
    raise RuntimeError(f"shape90.json defines {len(_SHAPE90)} points, not 90")


def shape90_from_mesh(mesh_xy: F32, points: F32) -> F32:
    """The 90 points of Tencent's ``FaceShape`` (region order :data:`SHAPE90_NAMES`), from the 888
    layout and (nose sides) the mesh."""
    return _SHAPE90.pick(mesh_xy, points)


def _iris(xy: F64, spec: dict[str, Any], count: int, axis: F64) -> F64:
    """Centre, then ``count - 1`` points on the iris ellipse, clockwise from the top of the face."""
    centre = xy[spec["centre"]]
    down = np.array([-axis[1], axis[0]])
    rel = xy[spec["ring"]] - centre
    u, v = rel @ axis, rel @ down
    # the ring's 4 points are the iris's extremes along and across the eye line
    right = rel[np.argmax(u)] - rel[np.argmin(u)]
    below = rel[np.argmax(v)] - rel[np.argmin(v)]
    theta = 2 * np.pi * np.arange(count - 1) / (count - 1)
    circle = centre + np.outer(np.sin(theta), right / 2) - np.outer(np.cos(theta), below / 2)
    return np.concatenate([centre[None], circle])


@lru_cache(maxsize=1)
def default_layout() -> Layout:
    return Layout(_TABLE)


def build_points(mesh_xy: npt.ArrayLike) -> F32:
    return default_layout().build(mesh_xy)


def ibug68_from_mesh(mesh_xy: F32, points: F32) -> F32:
    """The 300-W 68 points, from the 888 layout and (lips) the mesh."""
    return default_layout().ibug68(mesh_xy, points)
