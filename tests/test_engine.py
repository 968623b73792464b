"""The library on real photos with the real models: accuracy, modes, rotation, input kinds, errors."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from denseface import Analyzer, Face, ImageDecodeError
from denseface.engine.decode import load
from denseface.engine.pipeline import to_original
from tests.conftest import LANDMARKS, shared

# Per-face NME tolerances for these tests (the benchmark reports the medians; see README).
MAX_IBUG68_NME = 0.10
MAX_CONTOUR_NME = 0.05


def manifest() -> list[dict[str, Any]]:
    data = json.loads(shared("landmarks", "manifest.json").read_text())
    faces: list[dict[str, Any]] = data["faces"]
    return faces


def manual_faces(rotated: bool) -> list[dict[str, Any]]:
    return [
        f
        for f in manifest()
        if f["scheme"] == "ibug68" and f["annotation"] == "manual" and bool(f.get("rotated")) == rotated
    ]


def match(faces: list[Face], gt: np.ndarray) -> Face | None:
    centre = gt.mean(axis=0)
    for face in faces:
        b = face.box
        if b.x <= centre[0] <= b.x + b.width and b.y <= centre[1] <= b.y + b.height:
            return face
    return None


def interocular(gt: np.ndarray) -> float:
    return float(np.linalg.norm(gt[36] - gt[45]))


def ibug_nme(face: Face, gt: np.ndarray) -> float:
    return float(np.linalg.norm(face.to_ibug68() - gt, axis=1).mean() / interocular(gt))


@pytest.mark.parametrize("record", manual_faces(rotated=False), ids=lambda r: Path(r["image"]).stem)
def test_manual_faces_are_found_and_accurate(analyzer: Analyzer, record: dict[str, Any]) -> None:
    gt = np.array(record["points"], float)
    face = match(analyzer.analyze(LANDMARKS / record["image"]), gt)
    assert face is not None, "annotated face not found"
    assert ibug_nme(face, gt) < MAX_IBUG68_NME
    # eye corners of the 888 layout itself sit on the annotated corners
    scale = interocular(gt)
    assert np.linalg.norm(face.regions["LeftEye"][0] - gt[36]) / scale < MAX_CONTOUR_NME * 2
    assert np.linalg.norm(face.regions["RightEye"][0] - gt[45]) / scale < MAX_CONTOUR_NME * 2


ROTATED = manual_faces(rotated=True)


@pytest.mark.parametrize("record", ROTATED[::3], ids=lambda r: Path(r["image"]).stem)
def test_rotated_copies_are_recovered_with_rotate(analyzer: Analyzer, record: dict[str, Any]) -> None:
    gt = np.array(record["points"], float)
    face = match(analyzer.analyze(LANDMARKS / record["image"], rotate=True), gt)
    assert face is not None, "rotated face not found with rotate=True"
    assert ibug_nme(face, gt) < MAX_IBUG68_NME


def test_upside_down_face_is_found_right_or_not_at_all_without_rotate(analyzer: Analyzer) -> None:
    """Without rotation search an upside-down face may still be found (CenterFace's keypoints turn the
    crop), but then right way round; with it, it is found."""
    record = next(r for r in ROTATED if "rot180" in r["image"] and "indoor_020" in r["image"])
    gt = np.array(record["points"], float)
    face = match(analyzer.analyze(LANDMARKS / record["image"], rotate=False), gt)
    assert face is None or ibug_nme(face, gt) < 0.12
    turned = match(analyzer.analyze(LANDMARKS / record["image"], rotate=True), gt)
    assert turned is not None
    assert ibug_nme(turned, gt) < 0.12


def test_rotation_mapping_round_trips() -> None:
    img = np.zeros((3, 5), np.uint8)
    img[1, 4] = 1  # pixel centre (4.5, 1.5)
    for k in range(4):
        rotated = np.rot90(img, k)
        y, x = np.argwhere(rotated)[0]
        back = to_original(np.array([[x + 0.5, y + 0.5]], np.float32), k, 5, 3)
        np.testing.assert_allclose(back[0], [4.5, 1.5])


def test_mode_0_and_mode_1(analyzer: Analyzer) -> None:
    path = shared("robustness", "face_recognition", "two_people.jpg")
    faces = analyzer.analyze(path, mode=0)
    assert len(faces) == 2
    areas = [f.box.width * f.box.height for f in faces]
    assert areas == sorted(areas, reverse=True)
    largest = analyzer.analyze(path, mode=1)
    assert len(largest) == 1
    np.testing.assert_allclose(largest[0].points, faces[0].points, atol=1e-3)
    with pytest.raises(ValueError, match="mode"):
        analyzer.analyze(path, mode=2)


def test_at_most_five_faces(analyzer: Analyzer) -> None:
    faces = analyzer.analyze(shared("robustness", "ultralight", "10.jpg"))  # a crowd
    assert len(faces) == 5
    areas = [f.box.width * f.box.height for f in faces]
    assert areas == sorted(areas, reverse=True)


def test_no_face_gives_empty_list(analyzer: Analyzer) -> None:
    assert analyzer.analyze(shared("robustness", "mtcnn", "no-faces.jpg")) == []


def test_corrupt_bytes_raise_typed_error(analyzer: Analyzer) -> None:
    data = shared("robustness", "face_recognition", "obama.jpg").read_bytes()
    with pytest.raises(ImageDecodeError):
        analyzer.analyze(data[: len(data) // 3])
    with pytest.raises(ImageDecodeError):
        analyzer.analyze(b"definitely not an image")
    with pytest.raises(ImageDecodeError):
        analyzer.analyze(Path("/nonexistent/photo.jpg"))


@pytest.fixture(scope="module")
def portrait() -> Image.Image:
    return Image.open(shared("robustness", "face_recognition", "obama.jpg")).convert("RGB")


@pytest.fixture(scope="module")
def reference(analyzer: Analyzer, portrait: Image.Image) -> Face:
    return analyzer.analyze(portrait)[0]


def encode(img: Image.Image, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_exif_orientation_is_applied(analyzer: Analyzer, portrait: Image.Image, reference: Face) -> None:
    # store the pixels turned by 90° and tag them with orientation 6 ("rotate 90 CW to display")
    stored = portrait.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(stored, "JPEG", quality=95, exif=exif)
    decoded = load(data)
    assert (decoded.width, decoded.height) == portrait.size
    face = analyzer.analyze(decoded)[0]
    scale = float(np.linalg.norm(reference.regions["LeftEye"][0] - reference.regions["RightEye"][0]))
    assert np.abs(face.points - reference.points).max() / scale < 0.05


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16", "LA"])
def test_pixel_formats(analyzer: Analyzer, portrait: Image.Image, reference: Face, mode: str) -> None:
    if mode == "I;16":
        gray = np.asarray(portrait.convert("L"), np.uint16) * 257
        img = Image.fromarray(gray)
        assert img.mode.startswith("I;16")
    else:
        img = portrait.convert(mode)
    faces = analyzer.analyze(encode(img, "PNG"))
    assert len(faces) == 1
    scale = float(np.linalg.norm(reference.regions["LeftEye"][0] - reference.regions["RightEye"][0]))
    assert np.abs(faces[0].points - reference.points).mean() / scale < 0.05


def test_array_and_pil_inputs_agree(analyzer: Analyzer, portrait: Image.Image, reference: Face) -> None:
    from_array = analyzer.analyze(np.asarray(portrait))[0]
    from_pil = analyzer.analyze(portrait)[0]
    np.testing.assert_allclose(from_array.points, reference.points, atol=1e-3)
    np.testing.assert_allclose(from_pil.points, reference.points, atol=1e-3)


def test_extras_mesh_pose_score(reference: Face) -> None:
    assert reference.mesh.shape == (478, 3)
    assert 0.5 <= reference.score <= 1.0
    assert abs(reference.pose.yaw) < 15
    assert abs(reference.pose.roll) < 10
    assert reference.to_ibug68().shape == (68, 2)


def test_small_faces_are_found(analyzer: Analyzer) -> None:
    # a face of ~17 px inter-ocular distance in a 640 px COCO photo
    record = next(r for r in manifest() if r["annotation"] == "manual-small-face" and "000785" in r["image"])
    gt = np.array(record["points"], float)
    assert match(analyzer.analyze(LANDMARKS / record["image"]), gt) is not None
