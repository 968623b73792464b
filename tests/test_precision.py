"""Precision: no face on photos that hold none, and no real face lost to the check that ensures it.

Non-faces are scikit-image's sample photos (a cat, a colour wheel, a rocket at night, a motion-blurred
clock, coffee, coins, a horse, the Hubble deep field, text, textures…), each with rotation detection
off and on — the library must return no face and the server must answer ``NoFaceInPhoto``. Faces are
every shared annotated photo and every robustness photo: each face the pipeline finds with
verification off must still be found with it on.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.iai.v20200303 import iai_client, models

from denseface.api import Analyzer
from denseface.engine.decode import load
from denseface.engine.pipeline import VERIFY_THRESHOLD, PipelineOptions
from denseface.engine.result import Box
from tests.conftest import LANDMARKS, ROBUSTNESS, LiveServer

skimage = pytest.importorskip("skimage", reason="scikit-image (test extra) provides the non-face photos")
SKIMAGE_DATA = Path(skimage.__file__).parent / "data"
PEOPLE = {"astronaut", "camera"}  # the two sample photos that show a person
NON_FACES = sorted(
    p.name for p in SKIMAGE_DATA.iterdir() if p.suffix in {".png", ".jpg"} and p.stem not in PEOPLE
)
NAMED = ("chelsea.png", "color.png", "rocket.jpg", "clock_motion.png")  # false faces before the check


def test_the_named_non_faces_are_there() -> None:
    assert set(NAMED) <= set(NON_FACES), "scikit-image's sample photos changed"
    assert len(NON_FACES) >= 20


@pytest.mark.parametrize("rotate", [False, True], ids=["upright", "rotate"])
@pytest.mark.parametrize("name", NON_FACES)
def test_non_faces_have_no_face(analyzer: Analyzer, name: str, rotate: bool) -> None:
    faces = analyzer.analyze(SKIMAGE_DATA / name, rotate=rotate)
    assert faces == [], [(f.box, f.score, f.evidence) for f in faces]


@pytest.fixture(scope="module")
def unverified(model_dir: Path) -> Analyzer:
    return Analyzer(model_dir, options=PipelineOptions(verify_threshold=0.0))


def _photos() -> Iterator[tuple[Path, bool]]:
    manifest = json.loads((LANDMARKS / "manifest.json").read_text(encoding="utf-8"))
    rotated = {rec["image"]: bool(rec.get("rotated", False)) for rec in manifest["faces"]}
    for image, rotate in sorted(rotated.items()):
        yield LANDMARKS / image, rotate
    suffixes = {".jpg", ".jpeg", ".png", ".webp"}
    for path in sorted(ROBUSTNESS.rglob("*")):
        if path.suffix.lower() in suffixes and path.name != "no-faces.jpg":
            yield path, False


PHOTOS = list(_photos())
PHOTO_IDS = [str(p.relative_to(p.parents[1])) for p, _ in PHOTOS]


def _same(a: Box, b: Box) -> bool:
    iw = max(0.0, min(a.x + a.width, b.x + b.width) - max(a.x, b.x))
    ih = max(0.0, min(a.y + a.height, b.y + b.height) - max(a.y, b.y))
    return iw * ih >= 0.5 * min(a.width * a.height, b.width * b.height)


@pytest.mark.parametrize(("path", "rotate"), PHOTOS, ids=PHOTO_IDS)
def test_no_real_face_is_lost(analyzer: Analyzer, unverified: Analyzer, path: Path, rotate: bool) -> None:
    decoded = load(path)
    before = unverified.analyze(decoded, rotate=rotate)
    after = analyzer.analyze(decoded, rotate=rotate)
    lost = [f.box for f in before if not any(_same(f.box, g.box) for g in after)]
    assert not lost, f"faces lost to verification: {lost}"
    assert all(f.evidence is not None and f.evidence >= VERIFY_THRESHOLD for f in after)


def test_shared_sets_are_large_enough() -> None:
    assert len(PHOTOS) >= 100


@pytest.fixture(scope="module")
def client(live_server: LiveServer) -> iai_client.IaiClient:
    profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=live_server.endpoint))
    return iai_client.IaiClient(
        credential.Credential(live_server.secret_id, live_server.secret_key), "ap-guangzhou", profile
    )


@pytest.mark.parametrize("rotate", [0, 1], ids=["upright", "rotate"])
@pytest.mark.parametrize("name", NAMED)
def test_server_answers_no_face_for_non_faces(client: iai_client.IaiClient, name: str, rotate: int) -> None:
    request = models.AnalyzeDenseLandmarksRequest()
    request.Image = base64.b64encode((SKIMAGE_DATA / name).read_bytes()).decode()
    request.NeedRotateDetection = rotate
    with pytest.raises(TencentCloudSDKException) as info:
        client.AnalyzeDenseLandmarks(request)
    assert info.value.code == "InvalidParameterValue.NoFaceInPhoto"
    assert info.value.requestId
