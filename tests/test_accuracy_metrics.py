"""Unit tests of the metric functions in benchmarks/accuracy.py (no models, no images)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from denseface.engine.draw import NOSE_BRIDGE
from denseface.engine.layout import REGION_COUNTS, REGION_NAMES
from denseface.engine.result import Box


def _load() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "accuracy.py"
    spec = importlib.util.spec_from_file_location("denseface_bench_accuracy", path)
    if spec is None or spec.loader is None:
        raise ImportError(path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


acc = _load()

SQUARE = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], dtype=np.float64)


def test_point_to_open_polyline() -> None:
    line = np.array([[0, 0], [10, 0], [10, 10]], dtype=np.float64)
    pts = [[5, 3], [-4, 0], [13, 14], [12, 5], [10, 0]]
    np.testing.assert_allclose(acc.point_to_polyline(pts, line, False), [3, 4, 5, 2, 0])


def test_closed_polyline_has_closing_segment() -> None:
    p = [[0, 5]]  # on the closing edge (0,10) → (0,0)
    assert acc.point_to_polyline(p, SQUARE, True)[0] == pytest.approx(0.0)
    assert acc.point_to_polyline(p, SQUARE, False)[0] == pytest.approx(5.0)  # open: 5 from (0,0) and (0,10)
    inside = acc.point_to_polyline([[5, 4]], SQUARE, True)[0]
    assert inside == pytest.approx(4.0)


def test_degenerate_polylines() -> None:
    assert acc.point_to_polyline([[3, 4]], [[0, 0]], False)[0] == pytest.approx(5.0)
    repeated = np.array([[0, 0], [0, 0], [6, 0]], dtype=np.float64)  # zero-length segment
    np.testing.assert_allclose(acc.point_to_polyline([[3, 2], [0, -1]], repeated, True), [2, 1])
    with pytest.raises(ValueError, match="empty"):
        acc.point_to_polyline([[0, 0]], np.zeros((0, 2)), False)


def test_distance_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    line = rng.uniform(0, 100, (7, 2))
    pts = rng.uniform(-20, 120, (50, 2))
    dense = np.concatenate(
        [np.linspace(a, b, 20001) for a, b in zip(line, np.roll(line, -1, 0), strict=True)]
    )
    brute = np.linalg.norm(pts[:, None] - dense[None], axis=-1).min(axis=1)
    np.testing.assert_allclose(acc.point_to_polyline(pts, line, True), brute, atol=0.02)


def test_nose_is_two_open_pieces() -> None:
    nose = np.zeros((64, 2), np.float32)
    nose[:NOSE_BRIDGE, 1] = np.linspace(0, 10, NOSE_BRIDGE)  # bridge: x = 0, y 0..10
    nose[NOSE_BRIDGE:, 0] = np.linspace(20, 40, 64 - NOSE_BRIDGE)  # alar: y = 0, x 20..40
    nose[NOSE_BRIDGE:, 1] = 12
    # (10, 11) lies on the bridge→alar join (0,10)-(20,12), which must not count as contour
    assert acc.point_to_region([[10, 11]], "Nose", nose)[0] == pytest.approx(np.sqrt(101.0), abs=1e-4)


def test_pupil_uses_ring_not_centre() -> None:
    theta = np.linspace(0, 2 * np.pi, 31, endpoint=False)
    pupil = np.concatenate([[[0, 0]], np.stack([5 * np.cos(theta), 5 * np.sin(theta)], 1)]).astype(np.float32)
    assert acc.point_to_region([[0, 0]], "LeftPupil", pupil)[0] == pytest.approx(5.0, abs=0.05)


def test_contour_distances_zero_on_own_contours() -> None:
    rng = np.random.default_rng(1)
    regions = {
        name: rng.uniform(0, 100, (REGION_COUNTS[name], 2)).astype(np.float32) for name in REGION_NAMES
    }
    gt = np.zeros((68, 2))
    for idx, name in acc.IBUG_REGIONS:
        gt[idx.start : idx.stop] = regions[name][: len(idx)]
    np.testing.assert_allclose(acc.contour_distances(regions, gt), 0.0, atol=1e-4)


def test_region_table_covers_68_once() -> None:
    covered = [i for idx, _ in acc.IBUG_REGIONS for i in idx]
    assert covered == list(range(68))
    assert [i for g in acc.GROUPS.values() for i in g] == list(range(68))
    assert {name for _, name in acc.IBUG_REGIONS} <= set(REGION_NAMES)


def test_normalizers() -> None:
    gt = np.zeros((68, 2))
    gt[36], gt[45] = [10, 20], [40, 60]
    gt[0], gt[8] = [0, 0], [8, 18]
    assert acc.normalizer(gt, "interocular") == pytest.approx(50.0)
    assert acc.normalizer(gt, "bbox") == pytest.approx(np.sqrt(40 * 60))
    with pytest.raises(ValueError, match="unknown"):
        acc.normalizer(gt, "diagonal")


def test_wflw_map() -> None:
    m = acc.WFLW98_TO_IBUG68
    assert len(m) == 68
    assert len(set(m)) == 68
    assert min(m) == 0
    assert max(m) <= 97
    assert m[:17] == tuple(range(0, 33, 2))  # jaw: every second point, 0 and 32 at the ends
    assert (m[36], m[39], m[42], m[45]) == (60, 64, 68, 72)  # eye corners
    assert (m[48], m[54], m[60], m[64]) == (76, 82, 88, 92)  # mouth corners
    rec = {"scheme": "wflw98", "points": [[i, 0] for i in range(98)]}
    np.testing.assert_array_equal(acc.ground_truth_68(rec)[:, 0], m)
    assert acc.ground_truth_68({"scheme": "aflw19", "points": [[0, 0]] * 19}) is None


def test_match_faces_by_position() -> None:
    gt_a = np.array([[10, 10], [50, 60]], dtype=np.float64)
    gt_b = np.array([[200, 10], [240, 60]], dtype=np.float64)
    boxes = [Box(190, 0, 60, 70), Box(500, 500, 50, 50), Box(5, 0, 50, 70)]
    assert [i for i, _ in acc.match_faces([gt_a, gt_b], boxes)] == [2, 0]
    far = np.array([[900, 900], [950, 950]], dtype=np.float64)
    assert acc.match_faces([far], boxes) == [(None, 0.0)]
    # one face box cannot serve two annotated faces
    assert [i for i, _ in acc.match_faces([gt_a, gt_a + 1], [Box(5, 0, 50, 70)])].count(None) == 1
