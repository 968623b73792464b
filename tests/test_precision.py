"""Precision: no face on photos that hold none, and no real face lost to the check that ensures it.

Non-faces are scikit-image's sample photos (a cat, a colour wheel, a rocket at night, a motion-blurred
clock, coffee, coins, a horse, the Hubble deep field, text, textures…), each with rotation detection
off and on — the library must return no face and the server must answer ``NoFaceInPhoto``. Faces are
checked in test_face_finding.py: every face found before the face-finding rework is still found.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.iai.v20200303 import iai_client, models

from denseface.api import Analyzer
from tests.conftest import LiveServer

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
