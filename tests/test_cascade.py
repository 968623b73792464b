"""The face-finding cascade's budget, counted in model runs (never timed): ordinary portraits cost one
full-range view, the short-range view when the face is large, and the mesh (its refining pass only
where the first crop was off); no verification, no CenterFace. Each doubt brings in the stage it
names, and a request's work has a ceiling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from denseface.api import Analyzer
from denseface.engine import cascade
from denseface.engine.pipeline import MAX_ALTERNATIVES, ModelRuns, PipelineOptions
from denseface.engine.result import Face
from tests.conftest import LANDMARKS, ROBUSTNESS, shared

# Upright, clear, well-framed faces from the shared landmark sets: the cascade's ordinary case. A
# later feature that adds a model run to these photos fails here.
PORTRAITS = [
    "eos_lfpw__image_0001.png",
    "mmpose_tests__300w__indoor_020.png",
    "mmpose_tests__300w__indoor_029.png",
    "mmpose_tests__cofw__001766.jpg",
    "mmpose_tests__cofw__001805.jpg",
    "mmpose_tests__aflw__image22568.jpg",
    "mmpose_tests__300wlp__AFW_134212_1_0.jpg",
    "prnet_aflw2000_3d__AFLW2000__image00050.jpg",
    "prnet_aflw2000_3d__AFLW2000__image02283.jpg",
    "prnet_aflw2000_3d__AFLW2000__image03614.jpg",
]


def cost(analyzer: Analyzer, image: Path | bytes, **kwargs: object) -> tuple[list[Face], ModelRuns]:
    before = analyzer.model_runs()
    faces = analyzer.analyze(image, **kwargs)  # type: ignore[arg-type]
    return faces, analyzer.model_runs() - before


@pytest.mark.parametrize("mode", [0, 1])
@pytest.mark.parametrize("name", PORTRAITS)
def test_an_ordinary_portrait_costs_one_view_and_the_mesh(analyzer: Analyzer, name: str, mode: int) -> None:
    faces, runs = cost(analyzer, LANDMARKS / "images" / name, mode=mode)
    assert len(faces) == 1
    assert runs.full_range == 1
    assert runs.short_range == 1  # the face is large: the short-range view scores it and crops it
    assert 1 <= runs.mesh <= 2  # the second pass only where the first crop was off
    assert runs.centerface == 0  # neither verification nor CenterFace's view
    assert faces[0].evidence is None  # sure without verification


def test_sure_faces_are_the_faces_every_detector_finds(analyzer: Analyzer, model_dir: Path) -> None:
    """The cheap path returns the face running every detector and verification returns: the same
    points within 1% of the face's width (the crop may come from another detector's box)."""
    exhaustive = Analyzer(model_dir, options=PipelineOptions(detector="exhaustive"))
    for name in PORTRAITS[:4]:
        path = LANDMARKS / "images" / name
        (cheap,) = analyzer.analyze(path)
        (full,), runs = cost(exhaustive, path)
        assert runs.centerface >= 2  # exhaustive: CenterFace's view and verification every time
        assert full.evidence is not None
        error = np.linalg.norm(cheap.points - full.points, axis=1).mean() / full.box.width
        assert error < 0.01, (name, error)


def test_a_photo_without_faces_gets_the_thorough_search(analyzer: Analyzer) -> None:
    faces, runs = cost(analyzer, ROBUSTNESS / "mtcnn" / "no-faces.jpg")
    assert faces == []
    assert runs.centerface >= 1  # no sure face: CenterFace looked over the whole view


def test_a_faint_detection_away_from_the_faces_gets_a_close_look(analyzer: Analyzer) -> None:
    """Weak full-range detections beside sure faces: CenterFace on a crop at each, not the whole view."""
    faces, runs = cost(analyzer, ROBUSTNESS / "face_recognition" / "obama_and_biden.jpg")
    assert len(faces) >= 2
    assert runs.full_range == 1
    assert 1 <= runs.centerface <= 1 + cascade.MAX_PROBES + 2 * len(faces)


def test_a_proposal_that_is_not_sure_is_verified(analyzer: Analyzer) -> None:
    """Masked faces: neither BlazeFace model is confident, so each face is verified on its crop."""
    faces = analyzer.analyze(ROBUSTNESS / "ultralight" / "masked" / "img8.jpeg")
    assert len(faces) == 5
    assert all(f.evidence is not None for f in faces)


def test_mode_1_has_a_ceiling_on_its_work(analyzer: Analyzer) -> None:
    """Mode 1 on a crowd landmarks at most the MAX_RIVALS largest candidates (each with its
    alternatives, each at most two mesh passes), not every face in the photo."""
    faces, runs = cost(analyzer, ROBUSTNESS / "ultralight" / "masked" / "img8.jpeg", mode=1)
    assert len(faces) == 1
    assert runs.mesh <= 2 * cascade.MAX_RIVALS * (1 + MAX_ALTERNATIVES)


def test_rotate_finds_a_turned_face_without_the_thorough_search(analyzer: Analyzer) -> None:
    """With rotate the full-range detector looks at the four orientations; a face it finds with
    confidence the right way up is verified (its orientation checked) instead of searched again."""
    path = LANDMARKS / "images" / "rotated__eos_lfpw__image_0001_rot90ccw.png"
    faces, runs = cost(analyzer, path, rotate=True)
    assert len(faces) == 1
    assert runs.full_range == 4
    assert runs.centerface <= 1  # one verification crop at most; no CenterFace view
    assert faces[0].evidence is not None


def test_exhaustive_profile_is_the_union_of_every_detector(model_dir: Path) -> None:
    exhaustive = Analyzer(model_dir, options=PipelineOptions(detector="exhaustive"))
    faces, runs = cost(exhaustive, shared("robustness", "ultralight", "24.jpg"))
    assert runs.full_range == 1
    assert runs.short_range >= 1
    assert runs.centerface >= 1
    assert len(faces) == 5
