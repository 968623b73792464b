"""The 888-point layout on real faces: counts, order, closedness, spacing and left/right conventions."""

from __future__ import annotations

import numpy as np
import pytest

from denseface import REGION_COUNTS, REGION_NAMES, Analyzer, Face
from denseface.engine.layout import REGION_CLOSED, catmull_rom_weights, resample
from tests.conftest import REGION_COUNTS as EXPECTED_COUNTS
from tests.conftest import shared


@pytest.fixture(scope="module")
def face(analyzer: Analyzer) -> Face:
    faces = analyzer.analyze(shared("landmarks", "images", "eos_lfpw__image_0001.png"))
    assert len(faces) == 1
    return faces[0]


def iod(face: Face) -> float:
    return float(np.linalg.norm(face.regions["LeftEye"][0] - face.regions["RightEye"][0]))


def test_region_order_and_counts(face: Face) -> None:
    assert list(REGION_NAMES) == list(EXPECTED_COUNTS)
    assert REGION_COUNTS == EXPECTED_COUNTS
    assert face.points.shape == (888, 2)
    assert {name: len(pts) for name, pts in face.regions.items()} == EXPECTED_COUNTS
    start = 0
    for name in REGION_NAMES:  # regions are consecutive slices of `points`, in order
        np.testing.assert_array_equal(face.regions[name], face.points[start : start + EXPECTED_COUNTS[name]])
        start += EXPECTED_COUNTS[name]


def test_results_are_frozen(face: Face) -> None:
    with pytest.raises(ValueError, match="read-only"):
        face.points[0, 0] = 1.0
    with pytest.raises(AttributeError):
        face.score = 0.0  # type: ignore[misc]


@pytest.mark.parametrize("name", [n for n in EXPECTED_COUNTS if REGION_CLOSED[n] and "Pupil" not in n])
def test_closed_contours_do_not_repeat_their_first_point(face: Face, name: str) -> None:
    pts = face.regions[name]
    steps = np.linalg.norm(np.diff(np.vstack([pts, pts[:1]]), axis=0), axis=1)
    assert steps.min() > 0.0
    # the closing step is an ordinary step, not zero and not a jump
    assert 0.2 * np.median(steps) < steps[-1] < 3.0 * np.median(steps)


@pytest.mark.parametrize("name", ["LeftEye", "MouthOutside", "Chin", "CentralAxis", "Forehead"])
def test_points_are_evenly_spaced_within_parts(face: Face, name: str) -> None:
    steps = np.linalg.norm(np.diff(face.regions[name], axis=0), axis=1)
    # parts differ in length, so spacing is even within a part: most steps are near their part's median
    half = len(steps) // 2
    for part in (steps[: half - 1], steps[half + 1 :]):
        assert np.percentile(np.abs(part - np.median(part)) / np.median(part), 80) < 0.15


def test_left_right_as_seen_in_the_image(face: Face) -> None:
    r = face.regions
    for left, right in [
        ("LeftEye", "RightEye"),
        ("LeftEyeBrow", "RightEyeBrow"),
        ("LeftPupil", "RightPupil"),
        ("LeftEyeBags", "RightEyeBags"),
    ]:
        assert r[left][:, 0].mean() < r[right][:, 0].mean()
    # eyes start at their outer corners, the inner corner is point 32
    assert r["LeftEye"][0, 0] < r["LeftEye"][32, 0]
    assert r["RightEye"][0, 0] > r["RightEye"][32, 0]
    # brows start at their outer ends
    assert r["LeftEyeBrow"][0, 0] < r["LeftEyeBrow"][31, 0]
    assert r["RightEyeBrow"][0, 0] > r["RightEyeBrow"][31, 0]


def test_mouth_starts_at_left_corner_and_runs_counterclockwise(face: Face) -> None:
    for name in ("MouthOutside", "MouthInside"):
        pts = face.regions[name]
        assert pts[0, 0] == pytest.approx(pts[:, 0].min(), abs=1.0)
        # counterclockwise on screen (y down) = positive shoelace area in image coordinates... negated
        x, y = pts[:, 0], pts[:, 1]
        area = 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))
        assert area < 0, "counterclockwise as seen on screen"
        assert pts[1, 1] > pts[0, 1] - 1.0  # first goes along the lower lip


def test_pupils_centre_then_clockwise_ring(face: Face) -> None:
    for name in ("LeftPupil", "RightPupil"):
        pts = face.regions[name]
        centre, ring = pts[0], pts[1:]
        np.testing.assert_allclose(ring.mean(axis=0), centre, atol=0.05 * iod(face))
        assert ring[0, 1] < centre[1]  # starts at the top
        x, y = ring[:, 0] - centre[0], ring[:, 1] - centre[1]
        area = 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))
        assert area > 0, "clockwise as seen on screen"


def test_chin_forehead_axis_conventions(face: Face) -> None:
    r = face.regions
    eye_level = (r["LeftEye"][0, 1] + r["RightEye"][0, 1]) / 2
    scale = iod(face)
    # the contour runs from the image-left side at eye level round the chin to the right side
    assert abs(r["Chin"][0, 1] - eye_level) < 0.1 * scale
    assert abs(r["Chin"][-1, 1] - eye_level) < 0.1 * scale
    assert r["Chin"][0, 0] < r["LeftEye"][0, 0] < r["RightEye"][0, 0] < r["Chin"][-1, 0]
    assert r["Chin"][:, 1].max() == pytest.approx(r["Chin"][75:85, 1].max())
    # the forehead outline starts where the chin does and rises above the brows
    np.testing.assert_allclose(r["Forehead"][0], r["Chin"][0], atol=0.02 * scale)
    assert r["Forehead"][:, 1].min() < r["LeftEyeBrow"][:, 1].min() - 0.3 * scale
    # the central axis runs from the forehead top down to the chin bottom
    axis = r["CentralAxis"]
    assert axis[0, 1] < r["LeftEyeBrow"][:, 1].min()
    assert axis[-1, 1] > r["MouthOutside"][:, 1].max()
    assert axis[-1, 1] == pytest.approx(r["Chin"][:, 1].max(), abs=0.05 * scale)
    # the nose starts on the bridge between the eyes
    assert r["LeftEye"][32, 0] < r["Nose"][0, 0] < r["RightEye"][32, 0]


def test_box_spans_forehead_to_chin(face: Face) -> None:
    b = face.box
    assert b.y == pytest.approx(face.points[:, 1].min(), abs=1e-3)
    assert b.y + b.height == pytest.approx(face.points[:, 1].max(), abs=1e-3)


def test_resample_and_spline_helpers() -> None:
    square = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float)
    w = catmull_rom_weights(4, closed=True, sub=4)
    dense = w @ square
    np.testing.assert_allclose(dense[0], square[0])  # passes through its control points
    np.testing.assert_allclose(dense[4], square[1])
    line = np.array([[0.0, 0.0], [3.0, 0.0], [10.0, 0.0]])
    out = resample(line, 11, include_end=True)
    np.testing.assert_allclose(out[:, 0], np.arange(11.0))
    out = resample(line, 10, include_end=False)
    np.testing.assert_allclose(out[:, 0], np.arange(10.0))


def test_page_and_overlay_share_one_palette_and_layout() -> None:
    import re
    from pathlib import Path

    from denseface.engine.draw import NOSE_BRIDGE, REGION_COLORS

    js = (Path(__file__).parents[1] / "denseface" / "server" / "static" / "regions.js").read_text()
    found = re.findall(r'name: "(\w+)", count: (\d+), shape: "\w+", color: "#([0-9a-f]{6})"', js)
    assert [name for name, _, _ in found] == list(REGION_NAMES)
    assert {name: int(count) for name, count, _ in found} == EXPECTED_COUNTS
    for name, _, color in found:
        assert REGION_COLORS[name] == tuple(int(color[i : i + 2], 16) for i in (0, 2, 4))
    assert f"pieces: [{NOSE_BRIDGE}]" in js
