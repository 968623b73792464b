"""AnalyzeFace (90 points): the layout on real photos against the shared iBUG-68 annotation, and the
action end to end with the official Python SDK (both versions) against the session's ``denseface serve``:
Tencent's fields and types, the same engine as AnalyzeDenseLandmarks, Mode 0 up to 10 faces on a crowd
photo (5 for AnalyzeDenseLandmarks), FaceModelVersion 2.0/3.0, the shared error codes."""

from __future__ import annotations

import base64
import io
import json
import uuid
import warnings
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from tencentcloud.iai.v20180301 import models as models_2018
from tencentcloud.iai.v20200303 import models as models_2020

from denseface.api import Analyzer
from denseface.engine.result import Face
from tests.conftest import ANALYZE_FACE_FIELDS, LANDMARKS, SHAPE90, LiveServer, shared
from tests.test_sdk import V2018, V2020, Photo, envelope, error_code, make_client, sdk_error, signed_post

ACTION = "AnalyzeFace"
CROWD: Path = shared("robustness", "deepface", "selfie-many-people.jpg")  # 6 faces


# ------------------------------------------------------------------------------- the layout, library
def test_sdk_face_shape_has_these_regions() -> None:
    for models in (models_2018, models_2020):
        fields = {name[1:] for name in vars(models.FaceShape())}
        assert fields == set(SHAPE90)
        assert {name[1:] for name in vars(models.AnalyzeFaceResponse())} == ANALYZE_FACE_FIELDS


@pytest.fixture(scope="module")
def manual_faces(analyzer: Analyzer) -> list[tuple[Face, np.ndarray[Any, Any], float]]:
    """The 8 upright manual iBUG-68 faces: (the face found there, its annotation, inter-ocular px)."""
    records = json.loads((LANDMARKS / "manifest.json").read_text())["faces"]
    out = []
    for rec in records:
        if rec["scheme"] != "ibug68" or rec["annotation"] != "manual" or rec.get("rotated"):
            continue
        gt = np.asarray(rec["points"], np.float64)
        faces = analyzer.analyze(LANDMARKS / rec["image"])
        centre = gt.mean(axis=0)
        (face,) = [
            f
            for f in faces
            if f.box.x <= centre[0] <= f.box.x + f.box.width
            and f.box.y <= centre[1] <= f.box.y + f.box.height
        ]
        out.append((face, gt, float(np.linalg.norm(gt[36] - gt[45]))))
    assert len(out) == 8
    return out


def test_shape90_is_the_888_layout_at_the_anchors(manual_faces: list[Any]) -> None:
    """The anchors the issue fixes are the 888 layout's points of the same meaning."""
    for face, _, _ in manual_faces:
        shape, dense = face.shape90(), face.regions
        assert {name: len(points) for name, points in shape.items()} == SHAPE90
        assert list(shape) == list(SHAPE90)
        assert not shape["Mouth"].flags.writeable
        same = [
            (shape["FaceProfile"][0], dense["Chin"][0]),
            (shape["FaceProfile"][10], dense["Chin"][80]),
            (shape["FaceProfile"][20], dense["Chin"][159]),
            (shape["LeftEye"][0], dense["LeftEye"][0]),
            (shape["LeftEye"][4], dense["LeftEye"][32]),
            (shape["RightEye"][0], dense["RightEye"][0]),
            (shape["RightEye"][4], dense["RightEye"][32]),
            (shape["Mouth"][0], dense["MouthOutside"][0]),
            (shape["Mouth"][6], dense["MouthOutside"][32]),
            (shape["Nose"][0], dense["Nose"][23]),
            (shape["LeftPupil"][0], dense["LeftPupil"][0]),
            (shape["RightPupil"][0], dense["RightPupil"][0]),
        ]
        for a, b in same:
            np.testing.assert_array_equal(a, b)


def test_shape90_order_on_real_faces(manual_faces: list[Any]) -> None:
    """The documented order, left/right as seen in the image, on the 8 annotated faces (yaw up to 30°)."""
    for face, _, _ in manual_faces:
        s = {name: np.asarray(points) for name, points in face.shape90().items()}
        profile = s["FaceProfile"]
        lowest = int(np.argmax(profile[:, 1]))
        assert lowest in (9, 10, 11)
        if abs(face.pose.yaw) < 10:
            assert lowest == 10, "the chin is FaceProfile[10] on a frontal face"
        assert profile[0, 0] < profile[10, 0] < profile[20, 0]
        assert s["LeftEye"][0, 0] < s["LeftEye"][4, 0] < s["RightEye"][4, 0] < s["RightEye"][0, 0]
        for eye in ("LeftEye", "RightEye"):
            pts = s[eye]
            assert pts[1:4, 1].mean() > pts[5:8, 1].mean(), "[1-3] the lower lid, [5-7] the upper"
            pupil = s[eye.replace("Eye", "Pupil")][0]
            assert min(pts[0, 0], pts[4, 0]) < pupil[0] < max(pts[0, 0], pts[4, 0])
        for brow, eye in (("LeftEyeBrow", "LeftEye"), ("RightEyeBrow", "RightEye")):
            assert s[brow][:, 1].max() < s[eye][:, 1].min() + 0.1 * np.ptp(profile[:, 0])
            assert abs(s[brow][0, 0] - s[eye][0, 0]) < abs(s[brow][4, 0] - s[eye][0, 0]), "[0] the outer end"
            assert s[brow][1:4, 1].mean() > s[brow][5:8, 1].mean(), "[1-3] the lower edge"
        mouth = s["Mouth"]
        assert mouth[0, 0] < mouth[3, 0] < mouth[6, 0]
        assert mouth[9, 1] < mouth[19, 1] <= mouth[14, 1] + 1 < mouth[3, 1] + 1, "upper lip above lower"
        for lower, upper in ((mouth[1:6], mouth[7:12]), (mouth[12:17], mouth[17:22])):  # outer, inner
            assert np.all(np.diff(lower[:, 0]) > 0), "lower lip left → right"
            assert np.all(np.diff(upper[:, 0]) < 0), "upper lip right → left"
        nose = s["Nose"]
        assert nose[1, 1] < nose[0, 1] < nose[7, 1], "bridge top, tip, subnasale from the top down"
        assert nose[5, 0] < nose[7, 0] < nose[9, 0], "left wing, subnasale, right wing"
        assert np.all(np.diff(nose[1:6, 1]) > 0), "down the image-left side to the wing"
        assert np.all(np.diff(nose[9:13, 1]) < 0), "up the image-right side from the wing"


def test_shape90_anchors_near_the_ibug_annotation(manual_faces: list[Any]) -> None:
    """Chin ≈ iBUG 8, eye corners ≈ 36/39/42/45, mouth corners ≈ 48/54, nose tip ≈ 30 (in inter-ocular
    distances; the bounds are guard rails well above what benchmarks/accuracy90.py measures)."""
    pairs = {
        ("FaceProfile", 10, 8): 0.25,
        ("LeftEye", 0, 36): 0.10,
        ("LeftEye", 4, 39): 0.10,
        ("RightEye", 4, 42): 0.10,
        ("RightEye", 0, 45): 0.10,
        ("Mouth", 0, 48): 0.15,
        ("Mouth", 6, 54): 0.15,
        ("Nose", 0, 30): 0.15,
        ("Nose", 7, 33): 0.15,
    }
    for face, gt, iod in manual_faces:
        shape = face.shape90()
        for (region, index, ibug), bound in pairs.items():
            error = float(np.linalg.norm(shape[region][index] - gt[ibug])) / iod
            assert error < bound, (region, index, ibug, error)


def test_analyzer_max_faces(analyzer: Analyzer) -> None:
    """Mode 0's limit is a parameter: the crowd photo has 6 faces, 5 by default (AnalyzeDenseLandmarks)."""
    path = CROWD
    assert len(analyzer.analyze(path, max_faces=10)) == 6
    assert len(analyzer.analyze(path)) == 5
    assert len(analyzer.analyze(path, mode=1, max_faces=10)) == 1
    with pytest.raises(ValueError, match="max_faces"):
        analyzer.analyze(path, max_faces=0)


# ------------------------------------------------------------------------------------ the SDK, live
@pytest.fixture(scope="module")
def two_people() -> Photo:
    path = shared("robustness", "face_recognition", "two_people.jpg")
    with Image.open(path) as image:
        return Photo(path.read_bytes(), *image.size)


def face_request(version: str = V2020, **fields: Any) -> Any:
    models = models_2020 if version == V2020 else models_2018
    request = models.AnalyzeFaceRequest()
    request.from_json_string(json.dumps(fields))
    return request


def analyze_face(client: Any, request: Any) -> Any:
    """Call AnalyzeFace, failing on any warning the SDK raises while parsing (e.g. unknown fields)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        response = client.AnalyzeFace(request)
    assert not [w for w in caught if "tencentcloud" in w.filename and w.category is not DeprecationWarning], [
        str(w.message) for w in caught
    ]
    return response


def face_error(client: Any, request: Any, code: str) -> None:
    error = sdk_error(lambda: client.AnalyzeFace(request))
    assert error.code == code, str(error)


def check_shapes(response: Any, photo: Photo, faces: int, version: str = "3.0") -> list[Any]:
    assert (response.ImageWidth, response.ImageHeight) == (photo.width, photo.height)
    assert response.FaceModelVersion == version
    uuid.UUID(response.RequestId)
    assert len(response.FaceShapeSet) == faces
    for shape in response.FaceShapeSet:
        for region, count in SHAPE90.items():
            points = getattr(shape, region)
            assert len(points) == count, region
            for p in points:
                assert (type(p.X), type(p.Y)) == (int, int), region
                assert (0 <= p.X < photo.width, 0 <= p.Y < photo.height) == (True, True), region
    return list(response.FaceShapeSet)


@pytest.mark.parametrize("version", [V2020, V2018])
def test_sdk_both_versions_match_the_dense_action(
    live_server: LiveServer, two_people: Photo, version: str
) -> None:
    """AnalyzeFace's points are AnalyzeDenseLandmarks' at the shared anchors: one engine, one face order."""
    client = make_client(live_server, version=version)
    shapes = check_shapes(analyze_face(client, face_request(version, Image=two_people.b64)), two_people, 2)
    models = models_2020 if version == V2020 else models_2018
    dense_request = models.AnalyzeDenseLandmarksRequest()
    dense_request.Image = two_people.b64
    dense = client.AnalyzeDenseLandmarks(dense_request).DenseFaceShapeSet
    for shape, full in zip(shapes, dense, strict=True):
        for ours, theirs in (
            (shape.FaceProfile[10], full.Chin[80]),
            (shape.LeftEye[0], full.LeftEye[0]),
            (shape.RightEye[4], full.RightEye[32]),
            (shape.Mouth[6], full.MouthOutside[32]),
            (shape.Nose[0], full.Nose[23]),
            (shape.LeftPupil[0], full.LeftPupil[0]),
        ):
            assert (ours.X, ours.Y) == (theirs.X, theirs.Y)
        assert shape.LeftPupil[0].X < shape.RightPupil[0].X


def test_sdk_v1_get_and_face_model_version_2(live_server: LiveServer, two_people: Photo) -> None:
    """HmacSHA1 GET (a small copy fits the query), 2018 without region; "2.0" is answered as "2.0"."""
    with Image.open(io.BytesIO(two_people.data)) as image:
        image.thumbnail((400, 400))
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, "JPEG", quality=75)
        small = Photo(buffer.getvalue(), *image.size)
    client = make_client(live_server, version=V2018, method="GET", sign_method="HmacSHA1", region="")
    request = face_request(V2018, Image=small.b64, FaceModelVersion="2.0", NeedRotateDetection=1)
    check_shapes(analyze_face(client, request), small, 2, version="2.0")
    request = face_request(Image=small.b64, FaceModelVersion="3.0", Mode=1)
    check_shapes(analyze_face(make_client(live_server), request), small, 1)


def test_mode_0_returns_up_to_10_faces(live_server: LiveServer) -> None:
    """The crowd photo has 6 faces: AnalyzeFace returns all of them, AnalyzeDenseLandmarks its 5."""
    with Image.open(CROWD) as image:
        crowd = Photo(CROWD.read_bytes(), *image.size)
    client = make_client(live_server)
    check_shapes(analyze_face(client, face_request(Image=crowd.b64)), crowd, 6)
    dense = models_2020.AnalyzeDenseLandmarksRequest()
    dense.Image = crowd.b64
    assert len(client.AnalyzeDenseLandmarks(dense).DenseFaceShapeSet) == 5


def test_sdk_errors(live_server: LiveServer, two_people: Photo) -> None:
    client = make_client(live_server)
    face_error(client, face_request(), "InvalidParameterValue.ImageEmpty")
    face_error(
        client,
        face_request(Image=two_people.b64, FaceModelVersion="1.0"),
        "InvalidParameterValue.FaceModelVersionIllegal",
    )
    face_error(client, face_request(Image=two_people.b64, Mode=2), "InvalidParameterValue")
    face_error(client, face_request(Image=two_people.b64, Mode="1"), "InvalidParameter.InvalidParameter")
    face_error(client, face_request(Url="ftp://x"), "InvalidParameterValue.UrlIllegal")
    face_error(client, face_request(Url="http://10.1.2.3/a.jpg"), "FailedOperation.ImageDownloadError")
    face_error(
        client,
        face_request(Image=base64.b64encode(b"not an image").decode()),
        "FailedOperation.ImageDecodeFailed",
    )
    tiny = io.BytesIO()
    Image.new("RGB", (48, 48), (90, 90, 90)).save(tiny, "PNG")
    face_error(
        client,
        face_request(Image=base64.b64encode(tiny.getvalue()).decode()),
        "FailedOperation.ImageResolutionTooSmall",
    )
    no_face = base64.b64encode(shared("robustness", "mtcnn", "no-faces.jpg").read_bytes()).decode()
    face_error(client, face_request(Image=no_face), "InvalidParameterValue.NoFaceInPhoto")
    # "2.0" is AnalyzeFace's only: AnalyzeDenseLandmarks still takes "3.0" alone
    dense = models_2020.AnalyzeDenseLandmarksRequest()
    dense.Image, dense.FaceModelVersion = two_people.b64, "2.0"
    error = sdk_error(lambda: client.AnalyzeDenseLandmarks(dense))
    assert error.code == "InvalidParameterValue.FaceModelVersionIllegal"


def test_raw_fields_and_unknown_parameter(live_server: LiveServer, two_people: Photo) -> None:
    """Exactly Tencent's fields; a parameter AnalyzeFace does not have is UnknownParameter."""
    with httpx.Client(base_url=live_server.base_url, timeout=30) as http:
        inner = envelope(signed_post(http, live_server, {"Image": two_people.b64}, action=ACTION))
        assert set(inner) == ANALYZE_FACE_FIELDS
        for shape in inner["FaceShapeSet"]:
            assert list(shape) == list(SHAPE90)
            assert all(set(p) == {"X", "Y"} for region in SHAPE90 for p in shape[region])
        response = signed_post(http, live_server, {"Image": two_people.b64, "Extra": 1}, action=ACTION)
        assert error_code(response) == "UnknownParameter"
