"""End to end with the official Python SDK (``tencentcloud-sdk-python-iai``) against ``denseface serve``.

Every request form the SDK can send (TC3 POST/GET, v1 HmacSHA1/HmacSHA256, token, en-US, unsigned payload,
both API versions) on a real two-face photo, every documented error raised as ``TencentCloudSDKException``
with its code and a RequestId, and raw-HTTP checks of what the SDK cannot send. The last test checks that
the server is still up after all of it.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import math
import socket
import threading
import time
import types
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import urlencode

import httpx
import pytest
from PIL import Image
from tencentcloud.common import abstract_client, credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.iai.v20180301 import iai_client as iai_client_2018
from tencentcloud.iai.v20180301 import models as models_2018
from tencentcloud.iai.v20200303 import iai_client as iai_client_2020
from tencentcloud.iai.v20200303 import models as models_2020

from denseface.rpc.signing import sign_tc3_request
from tests.conftest import METRICS_AUTH, OTHER_ID, OTHER_KEY, REGION_COUNTS, LiveServer, shared

SHAPE_FIELDS = {"X", "Y", "Width", "Height", *REGION_COUNTS}
RESPONSE_FIELDS = {"ImageWidth", "ImageHeight", "DenseFaceShapeSet", "FaceModelVersion", "RequestId"}
MAX_GET_QUERY = 32 * 1024
REGION = "ap-guangzhou"
ACTION = "AnalyzeDenseLandmarks"
V2020 = "2020-03-03"
V2018 = "2018-03-01"

Client = Any  # iai_client.IaiClient of either version
Request = Any


# ------------------------------------------------------------------------------------------ images
@dataclass(frozen=True)
class Photo:
    data: bytes
    width: int
    height: int

    @property
    def b64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")


def _jpeg(image: Image.Image, quality: int = 85) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def photo() -> Photo:
    """``two_people.jpg`` as shared (1126×661, two faces)."""
    path = shared("robustness", "face_recognition", "two_people.jpg")
    with Image.open(path) as image:
        width, height = image.size
    return Photo(path.read_bytes(), width, height)


@pytest.fixture(scope="module")
def small_photo(photo: Photo) -> Photo:
    """The same photo downscaled so that it fits a GET query (≤ 32 KB url-encoded, with room to spare)."""
    with Image.open(io.BytesIO(photo.data)) as image:
        image.thumbnail((400, 400))
        data = _jpeg(image, quality=75)
        small = Photo(data, *image.size)
    assert len(urlencode({"Image": small.b64})) < MAX_GET_QUERY - 2048
    return small


@pytest.fixture(scope="module")
def no_face_photo() -> bytes:
    return shared("robustness", "mtcnn", "no-faces.jpg").read_bytes()


# ---------------------------------------------------------------------------- a local image server
class _ImageHandler(BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        body = self.files.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")


@pytest.fixture(scope="module")
def image_server(photo: Photo) -> Iterator[str]:
    """Base URL of a 127.0.0.1 server (allow-listed by the live server) serving ``/two_people.jpg``."""
    handler = type("Handler", (_ImageHandler,), {"files": {"/two_people.jpg": photo.data}})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# ---------------------------------------------------------------------------------------- clients
def make_client(
    server: LiveServer,
    *,
    version: str = V2020,
    secret_id: str | None = None,
    secret_key: str | None = None,
    token: str | None = None,
    region: str = REGION,
    method: str = "POST",
    sign_method: str | None = None,
    language: str = "zh-CN",
    unsigned_payload: bool = False,
) -> Client:
    cred = credential.Credential(secret_id or server.secret_id, secret_key or server.secret_key, token)
    http = HttpProfile(protocol="http", endpoint=server.endpoint, reqMethod=method, reqTimeout=30)
    profile = ClientProfile(signMethod=sign_method, httpProfile=http, language=language)
    profile.unsignedPayload = unsigned_payload
    module = iai_client_2020 if version == V2020 else iai_client_2018
    return module.IaiClient(cred, region, profile)


def make_request(version: str = V2020, **fields: Any) -> Request:
    models = models_2020 if version == V2020 else models_2018
    request = models.AnalyzeDenseLandmarksRequest()
    request.from_json_string(json.dumps(fields))
    return request


def call(client: Client, request: Request) -> Any:
    """Call the action, failing the test on any warning the SDK raises while parsing the response."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        response = client.AnalyzeDenseLandmarks(request)
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "useless" in m], messages
    assert not [w for w in caught if "tencentcloud" in w.filename and w.category is not DeprecationWarning], (
        messages
    )
    assert not [m for m in messages if "This action is deprecated" in m], messages
    return response


def sdk_error(fn: Callable[[], Any]) -> TencentCloudSDKException:
    with pytest.raises(TencentCloudSDKException) as info:
        fn()
    error = info.value
    assert error.requestId, f"no RequestId in {error}"
    uuid.UUID(error.requestId)
    assert error.message
    return error


def assert_error(client: Client, request: Request, code: str) -> TencentCloudSDKException:
    error = sdk_error(lambda: client.AnalyzeDenseLandmarks(request))
    assert error.code == code, str(error)
    return error


# ------------------------------------------------------------------------------------ result checks
def check_faces(response: Any, photo: Photo, faces: int = 2, *, upright: bool = True) -> list[Any]:
    assert response.ImageWidth == photo.width
    assert response.ImageHeight == photo.height
    assert response.FaceModelVersion == "3.0"
    uuid.UUID(response.RequestId)
    shapes = response.DenseFaceShapeSet
    assert len(shapes) == faces
    for shape in shapes:
        for name in ("X", "Y", "Width", "Height"):
            assert type(getattr(shape, name)) is int, name
        assert shape.Width > 20
        assert shape.Height > 20
        assert 0 <= shape.X + shape.Width / 2 <= photo.width
        assert 0 <= shape.Y + shape.Height / 2 <= photo.height
        total = 0
        margin_x, margin_y = shape.Width, shape.Height  # a face box's worth of slack around the box
        for region, count in REGION_COUNTS.items():
            points = getattr(shape, region)
            assert points is not None, region
            assert len(points) == count, region
            total += len(points)
            for point in points:
                assert type(point.X) is int, region
                assert type(point.Y) is int, region
                assert shape.X - margin_x <= point.X <= shape.X + shape.Width + margin_x, region
                assert shape.Y - margin_y <= point.Y <= shape.Y + shape.Height + margin_y, region
                assert -photo.width // 4 <= point.X <= photo.width * 5 // 4
                assert -photo.height // 4 <= point.Y <= photo.height * 5 // 4
        assert total == 888
        if upright:
            left_pupil = _center(shape.LeftPupil)
            right_pupil = _center(shape.RightPupil)
            assert left_pupil[0] < right_pupil[0], "LeftPupil is the eye on the image's left"
    if faces == 2:  # two different people, not one face twice
        a, b = shapes
        (ax, ay), (bx, by) = _center(a.Nose), _center(b.Nose)
        assert math.hypot(ax - bx, ay - by) > max(a.Width, b.Width)
    return list(shapes)


def _center(points: list[Any]) -> tuple[float, float]:
    return sum(p.X for p in points) / len(points), sum(p.Y for p in points) / len(points)


def _boxes(shapes: list[Any], scale: float = 1.0) -> list[tuple[float, float, float, float]]:
    return sorted((s.X * scale, s.Y * scale, s.Width * scale, s.Height * scale) for s in shapes)


# ------------------------------------------------------------------------------------ success forms
def test_tc3_post_2020(live_server: LiveServer, photo: Photo) -> None:
    response = call(make_client(live_server), make_request(Image=photo.b64))
    check_faces(response, photo)


def test_tc3_post_2018(live_server: LiveServer, photo: Photo) -> None:
    client = make_client(live_server, version=V2018)
    check_faces(call(client, make_request(V2018, Image=photo.b64)), photo)


def test_2018_without_region(live_server: LiveServer, small_photo: Photo) -> None:
    client = make_client(live_server, version=V2018, region="")
    check_faces(call(client, make_request(V2018, Image=small_photo.b64)), small_photo)


def test_tc3_get_matches_post(live_server: LiveServer, photo: Photo, small_photo: Photo) -> None:
    full = check_faces(call(make_client(live_server), make_request(Image=photo.b64)), photo)
    client = make_client(live_server, method="GET")
    small = check_faces(call(client, make_request(Image=small_photo.b64)), small_photo)
    # the same two faces, found on the downscaled copy
    scale = photo.width / small_photo.width
    for big_box, small_box in zip(_boxes(full), _boxes(small, scale), strict=True):
        tolerance = 0.15 * big_box[2]
        assert all(abs(a - b) <= tolerance for a, b in zip(big_box, small_box, strict=True))


def test_hmacsha256_get(live_server: LiveServer, small_photo: Photo) -> None:
    client = make_client(live_server, method="GET", sign_method="HmacSHA256")
    check_faces(call(client, make_request(Image=small_photo.b64)), small_photo)
    # integers travel as query strings here
    request = make_request(Image=small_photo.b64, Mode=1, NeedRotateDetection=0)
    check_faces(call(client, request), small_photo, faces=1)


def test_endpoint_with_scheme(live_server: LiveServer, small_photo: Photo) -> None:
    """``endpoint="http://127.0.0.1:PORT"``: the SDK sends and signs that literal string as Host."""
    cred = credential.Credential(live_server.secret_id, live_server.secret_key)
    for sign_method in (None, "HmacSHA1"):
        profile = ClientProfile(
            signMethod=sign_method, httpProfile=HttpProfile(endpoint=live_server.base_url)
        )
        client = iai_client_2020.IaiClient(cred, REGION, profile)
        check_faces(call(client, make_request(Image=small_photo.b64)), small_photo)


def test_rotated_photo(live_server: LiveServer, small_photo: Photo) -> None:
    with Image.open(io.BytesIO(small_photo.data)) as image:
        rotated = Photo(
            _jpeg(image.transpose(Image.Transpose.ROTATE_90), quality=90), image.height, image.width
        )
    request = make_request(Image=rotated.b64, NeedRotateDetection=1)
    check_faces(call(make_client(live_server), request), rotated, upright=False)


def test_hmacsha1_post(live_server: LiveServer, photo: Photo) -> None:
    client = make_client(live_server, sign_method="HmacSHA1")
    check_faces(call(client, make_request(Image=photo.b64)), photo)


def test_hmacsha1_post_2018(live_server: LiveServer, small_photo: Photo) -> None:
    client = make_client(live_server, version=V2018, sign_method="HmacSHA1", region="")
    check_faces(call(client, make_request(V2018, Image=small_photo.b64)), small_photo)


def test_with_token(live_server: LiveServer, small_photo: Photo) -> None:
    client = make_client(live_server, token="a-session-token")
    check_faces(call(client, make_request(Image=small_photo.b64)), small_photo)
    v1 = make_client(live_server, token="a-session-token", method="GET", sign_method="HmacSHA1")
    check_faces(call(v1, make_request(Image=small_photo.b64)), small_photo)


def test_en_us(live_server: LiveServer, small_photo: Photo) -> None:
    client = make_client(live_server, language="en-US")
    check_faces(call(client, make_request(Image=small_photo.b64)), small_photo)


def test_unsigned_payload(live_server: LiveServer, small_photo: Photo) -> None:
    client = make_client(live_server, unsigned_payload=True)
    check_faces(call(client, make_request(Image=small_photo.b64)), small_photo)


def test_url_get(live_server: LiveServer, photo: Photo, image_server: str) -> None:
    url = f"{image_server}/two_people.jpg"
    check_faces(call(make_client(live_server, method="GET"), make_request(Url=url)), photo)
    # Url wins over Image
    request = make_request(V2018, Url=url, Image=base64.b64encode(b"not an image").decode())
    check_faces(call(make_client(live_server, version=V2018), request), photo)


def test_explicit_parameters(live_server: LiveServer, small_photo: Photo) -> None:
    request = make_request(Image=small_photo.b64, Mode=0, FaceModelVersion="3.0", NeedRotateDetection=1)
    check_faces(call(make_client(live_server), request), small_photo)


@pytest.fixture(scope="module")
def uneven_photo(photo: Photo) -> Photo:
    """Both people of the photo, the right one shrunk to 60 %, so that one face is clearly the largest."""
    with Image.open(io.BytesIO(photo.data)) as image:
        half = image.width // 2
        canvas = Image.new("RGB", image.size, (128, 128, 128))
        canvas.paste(image.crop((0, 0, half, image.height)), (0, 0))
        right = image.crop((half, 0, image.width, image.height))
        right = right.resize((right.width * 3 // 5, right.height * 3 // 5))
        canvas.paste(right, (half, 60))
    return Photo(_jpeg(canvas), *canvas.size)


def test_mode_1_returns_the_largest_face(live_server: LiveServer, uneven_photo: Photo) -> None:
    client = make_client(live_server)
    both = check_faces(call(client, make_request(Image=uneven_photo.b64, Mode=0)), uneven_photo)
    big, small = sorted(both, key=lambda s: -s.Width * s.Height)
    assert big.Width > 1.4 * small.Width
    request = make_request(Image=uneven_photo.b64, Mode=1)
    (only,) = check_faces(call(client, request), uneven_photo, faces=1)
    assert abs(only.X - big.X) <= 0.1 * big.Width
    assert abs(only.Y - big.Y) <= 0.1 * big.Height
    assert abs(only.Width - big.Width) <= 0.1 * big.Width


# -------------------------------------------------------------------------------------- SDK errors
def test_wrong_key_tc3_and_v1(live_server: LiveServer, small_photo: Photo) -> None:
    for sign_method in (None, "HmacSHA1", "HmacSHA256"):
        for method in ("POST", "GET"):
            client = make_client(live_server, secret_key="wrong-key", sign_method=sign_method, method=method)
            assert_error(client, make_request(Image=small_photo.b64), "AuthFailure.SignatureFailure")


def test_unknown_secret_id(live_server: LiveServer, small_photo: Photo) -> None:
    for sign_method in (None, "HmacSHA1"):
        client = make_client(
            live_server, secret_id="AKIDunknown000000000000000000000000", sign_method=sign_method
        )
        assert_error(client, make_request(Image=small_photo.b64), "AuthFailure.SecretIdNotFound")


def test_stale_timestamp(
    live_server: LiveServer, small_photo: Photo, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_time = time.time
    monkeypatch.setattr(abstract_client, "time", types.SimpleNamespace(time=lambda: real_time() - 600))
    for sign_method in (None, "HmacSHA256"):
        client = make_client(live_server, sign_method=sign_method)
        assert_error(client, make_request(Image=small_photo.b64), "AuthFailure.SignatureExpire")
    monkeypatch.setattr(abstract_client, "time", types.SimpleNamespace(time=lambda: real_time() + 600))
    assert_error(make_client(live_server), make_request(Image=small_photo.b64), "AuthFailure.SignatureExpire")


def test_no_image(live_server: LiveServer) -> None:
    for version in (V2020, V2018):
        client = make_client(live_server, version=version)
        assert_error(client, make_request(version), "InvalidParameterValue.ImageEmpty")
        assert_error(client, make_request(version, Image=""), "InvalidParameterValue.ImageEmpty")
    get = make_client(live_server, method="GET", sign_method="HmacSHA1")
    assert_error(get, make_request(Mode=1), "InvalidParameterValue.ImageEmpty")


def test_gif(live_server: LiveServer, small_photo: Photo) -> None:
    buffer = io.BytesIO()
    with Image.open(io.BytesIO(small_photo.data)) as image:
        image.save(buffer, "GIF")
    gif = base64.b64encode(buffer.getvalue()).decode()
    assert_error(make_client(live_server), make_request(Image=gif), "FailedOperation.ImageDecodeFailed")


@pytest.mark.parametrize(
    ("fmt", "mode", "code"),
    [
        ("PNG", "RGB", None),
        ("PNG", "RGBA", None),
        ("PNG", "L", None),
        ("BMP", "RGB", None),
        ("WEBP", "RGB", "FailedOperation.ImageDecodeFailed"),
        ("TIFF", "RGB", "FailedOperation.ImageDecodeFailed"),
    ],
)
def test_formats(live_server: LiveServer, small_photo: Photo, fmt: str, mode: str, code: str | None) -> None:
    buffer = io.BytesIO()
    with Image.open(io.BytesIO(small_photo.data)) as image:
        image.convert(mode).save(buffer, fmt)
    request = make_request(Image=base64.b64encode(buffer.getvalue()).decode())
    if code is None:
        check_faces(call(make_client(live_server), request), small_photo)
    else:
        assert_error(make_client(live_server), request, code)


def test_non_jpeg_over_2000(live_server: LiveServer) -> None:
    client = make_client(live_server)
    for fmt in ("PNG", "BMP"):
        buffer = io.BytesIO()
        Image.new("RGB", (2001, 100), (90, 90, 90)).save(buffer, fmt)
        request = make_request(Image=base64.b64encode(buffer.getvalue()).decode())
        assert_error(client, request, "FailedOperation.ImageResolutionExceed")


def test_not_an_image(live_server: LiveServer) -> None:
    client = make_client(live_server)
    garbage = base64.b64encode(b"hello, this is not an image" * 10).decode()
    assert_error(client, make_request(Image=garbage), "FailedOperation.ImageDecodeFailed")
    assert_error(client, make_request(Image="!!! not base64 !!!"), "FailedOperation.ImageDecodeFailed")


def test_oversized_image(live_server: LiveServer, photo: Photo) -> None:
    padded = photo.data + b"\0" * (4 * 1024 * 1024 - len(photo.data))  # a valid JPEG with trailing bytes
    b64 = base64.b64encode(padded).decode()
    assert len(b64) > 5 * 1024 * 1024
    assert_error(make_client(live_server), make_request(Image=b64), "FailedOperation.ImageSizeExceed")


def test_resolution_exceed_from_header(live_server: LiveServer) -> None:
    client = make_client(live_server)
    full = _jpeg(Image.new("RGB", (4001, 300), (120, 90, 60)))
    assert_error(
        client, make_request(Image=base64.b64encode(full).decode()), "FailedOperation.ImageResolutionExceed"
    )
    # only the header survives: decoding would fail, so the answer proves it came from the header
    truncated = full[:1024]
    with pytest.raises(OSError), Image.open(io.BytesIO(truncated)) as image:
        image.load()
    request = make_request(Image=base64.b64encode(truncated).decode())
    assert_error(client, request, "FailedOperation.ImageResolutionExceed")
    # a 4000-px JPEG is fine as far as resolution goes (and has no face)
    ok = _jpeg(Image.new("RGB", (4000, 300), (120, 90, 60)))
    assert_error(
        client, make_request(Image=base64.b64encode(ok).decode()), "InvalidParameterValue.NoFaceInPhoto"
    )


def test_resolution_too_small(live_server: LiveServer, small_photo: Photo) -> None:
    with Image.open(io.BytesIO(small_photo.data)) as image:
        tiny = _jpeg(image.resize((100, 63)))
    request = make_request(Image=base64.b64encode(tiny).decode())
    assert_error(make_client(live_server), request, "FailedOperation.ImageResolutionTooSmall")


def test_no_face(live_server: LiveServer, no_face_photo: bytes) -> None:
    request = make_request(Image=base64.b64encode(no_face_photo).decode())
    error = assert_error(make_client(live_server), request, "InvalidParameterValue.NoFaceInPhoto")
    assert error.message


def test_bad_url(live_server: LiveServer) -> None:
    client = make_client(live_server)
    for url in ("ftp://x", "http://", "not a url", "file:///etc/passwd"):
        assert_error(client, make_request(Url=url), "InvalidParameterValue.UrlIllegal")


def test_private_url_refused_without_traffic(live_server: LiveServer) -> None:
    client = make_client(live_server)
    for url in ("http://10.0.0.1/x.jpg", "http://169.254.169.254/latest/meta-data", "http://[::1]/x.jpg"):
        started = time.monotonic()
        assert_error(client, make_request(Url=url), "FailedOperation.ImageDownloadError")
        # a connection attempt to an unroutable address would wait for the connect timeout
        assert time.monotonic() - started < 1.0, url


def test_url_not_found(live_server: LiveServer, image_server: str) -> None:
    request = make_request(Url=f"{image_server}/missing.jpg")
    assert_error(make_client(live_server), request, "FailedOperation.ImageDownloadError")


def test_2020_without_region(live_server: LiveServer, small_photo: Photo) -> None:
    for sign_method in (None, "HmacSHA1"):
        client = make_client(live_server, region="", sign_method=sign_method)
        assert_error(client, make_request(Image=small_photo.b64), "MissingParameter")


def test_body_over_10_mb(live_server: LiveServer) -> None:
    request = make_request(Image="A" * (10 * 1024 * 1024 + 16))
    assert_error(make_client(live_server), request, "RequestSizeLimitExceeded")


def test_v1_post_over_1_mb(live_server: LiveServer) -> None:
    request = make_request(Image="A" * (1024 * 1024 + 16))
    assert_error(make_client(live_server, sign_method="HmacSHA1"), request, "RequestSizeLimitExceeded")


def test_get_over_32_kb(live_server: LiveServer) -> None:
    request = make_request(Image="A" * (33 * 1024))
    for sign_method in (None, "HmacSHA256"):
        client = make_client(live_server, method="GET", sign_method=sign_method)
        assert_error(client, request, "RequestSizeLimitExceeded")


def test_rate_limit(live_server: LiveServer) -> None:
    client = make_client(live_server, secret_id=OTHER_ID, secret_key=OTHER_KEY)
    codes = []
    for _ in range(8):  # cheap requests (no image), far faster than 2 per second
        codes.append(sdk_error(lambda: client.AnalyzeDenseLandmarks(make_request())).code)
    assert "RequestLimitExceeded" in codes, codes
    assert "InvalidParameterValue.ImageEmpty" in codes, codes  # the first ones got through
    assert set(codes) == {"RequestLimitExceeded", "InvalidParameterValue.ImageEmpty"}, codes
    # the main key is not affected by the other key's limit
    assert_error(make_client(live_server), make_request(), "InvalidParameterValue.ImageEmpty")


@pytest.mark.parametrize(
    ("version", "action"),
    [(V2020, "DetectFace"), (V2020, "SearchFaces"), (V2018, "DetectFaceAttributes"), (V2018, "CompareFace")],
)
def test_unimplemented_iai_actions(live_server: LiveServer, version: str, action: str) -> None:
    """The SDK's own methods for iai actions denseface does not implement: UnknowMethod, naming them."""
    models = models_2020 if version == V2020 else models_2018
    request = getattr(models, f"{action}Request")()
    request.Image = "aGk="
    for language in ("zh-CN", "en-US"):
        method = getattr(make_client(live_server, version=version, language=language), action)
        error = sdk_error(functools.partial(method, request))
        assert error.code == "UnsupportedOperation.UnknowMethod", str(error)
        assert action in error.message
        assert "AnalyzeDenseLandmarks" in error.message
    # authentication still comes first
    wrong = make_client(live_server, version=version, secret_key="wrong-key")
    assert sdk_error(lambda: getattr(wrong, action)(request)).code == "AuthFailure.SignatureFailure"


def test_parameter_of_the_wrong_type(live_server: LiveServer, small_photo: Photo) -> None:
    """A parameter the SDK is given with the wrong type reaches the server as such:
    InvalidParameter.InvalidParameter (the request's own format errors stay InvalidParameter)."""
    for version in (V2020, V2018):
        request = make_request(version, Image=small_photo.b64, Mode="1")  # a JSON string, not 1
        assert_error(make_client(live_server, version=version), request, "InvalidParameter.InvalidParameter")
    request = make_request(Image=small_photo.b64, NeedRotateDetection="yes")
    for sign_method in (None, "HmacSHA1"):  # as a query string: not a decimal integer
        client = make_client(live_server, method="GET", sign_method=sign_method)
        assert_error(client, request, "InvalidParameter.InvalidParameter")


def test_localized_messages(live_server: LiveServer) -> None:
    zh = assert_error(make_client(live_server), make_request(), "InvalidParameterValue.ImageEmpty")
    en = assert_error(
        make_client(live_server, language="en-US"), make_request(), "InvalidParameterValue.ImageEmpty"
    )
    assert zh.message != en.message
    assert any("\u4e00" <= ch <= "\u9fff" for ch in zh.message), zh.message
    assert en.message.isascii(), en.message


# ------------------------------------------------------------------------------------ raw HTTP
@pytest.fixture(scope="module")
def http(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.base_url, timeout=30) as client:
        yield client


def envelope(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"Response"}
    inner: dict[str, Any] = body["Response"]
    uuid.UUID(inner["RequestId"])
    return inner


def error_code(response: httpx.Response) -> str:
    inner = envelope(response)
    assert set(inner) == {"Error", "RequestId"}, inner
    assert set(inner["Error"]) == {"Code", "Message"}
    assert inner["Error"]["Message"]
    code: str = inner["Error"]["Code"]
    return code


def signed_post(
    http: httpx.Client,
    server: LiveServer,
    params: dict[str, Any],
    *,
    action: str = ACTION,
    version: str = V2020,
    language: str | None = None,
) -> httpx.Response:
    body = json.dumps(params).encode()
    headers = sign_tc3_request(
        server.secret_id,
        server.secret_key,
        host=server.endpoint,
        action=action,
        version=version,
        timestamp=int(time.time()),
        payload=body,
        region=REGION,
        language=language,
    )
    return http.post("/", content=body, headers=headers)


def test_raw_success_has_exactly_tencents_fields(
    http: httpx.Client, live_server: LiveServer, small_photo: Photo
) -> None:
    inner = envelope(signed_post(http, live_server, {"Image": small_photo.b64}))
    assert set(inner) == RESPONSE_FIELDS
    assert len(inner["DenseFaceShapeSet"]) == 2
    for shape in inner["DenseFaceShapeSet"]:
        assert set(shape) == SHAPE_FIELDS
        for region in REGION_COUNTS:
            assert all(set(point) == {"X", "Y"} for point in shape[region])
            assert all(type(v) is int for point in shape[region] for v in point.values())


def test_raw_request_format_is_invalid_parameter(http: httpx.Client, live_server: LiveServer) -> None:
    """The request's own format (not one parameter's type) keeps the plain InvalidParameter."""
    for body in (b"[1, 2]", b"{not json"):
        headers = sign_tc3_request(
            live_server.secret_id,
            live_server.secret_key,
            host=live_server.endpoint,
            action=ACTION,
            version=V2020,
            timestamp=int(time.time()),
            payload=body,
            region=REGION,
        )
        assert error_code(http.post("/", content=body, headers=headers)) == "InvalidParameter"


def test_raw_unsupported_method(http: httpx.Client) -> None:
    for method in ("PUT", "DELETE", "PATCH"):
        assert error_code(http.request(method, "/", content=b"{}")) == "UnsupportedProtocol"


def test_raw_invalid_action(http: httpx.Client, live_server: LiveServer) -> None:
    """An action iai does not have is InvalidAction; one it has but denseface does not implement is
    UnsupportedOperation.UnknowMethod (test_unimplemented_iai_actions)."""
    assert error_code(signed_post(http, live_server, {}, action="DescribeInstances")) == "InvalidAction"
    assert error_code(signed_post(http, live_server, {}, action="DetectFace")) == (
        "UnsupportedOperation.UnknowMethod"
    )
    # CompareMaskFace is an action of iai 2020-03-03 only
    response = signed_post(http, live_server, {}, action="CompareMaskFace", version=V2018)
    assert error_code(response) == "InvalidAction"


def test_raw_no_such_version(http: httpx.Client, live_server: LiveServer) -> None:
    assert error_code(signed_post(http, live_server, {}, version="2019-01-01")) == "NoSuchVersion"


def test_raw_unknown_parameter(http: httpx.Client, live_server: LiveServer, small_photo: Photo) -> None:
    response = signed_post(http, live_server, {"Image": small_photo.b64, "Colour": "red"})
    assert error_code(response) == "UnknownParameter"


def test_raw_bad_values(http: httpx.Client, live_server: LiveServer, small_photo: Photo) -> None:
    image = small_photo.b64
    assert error_code(signed_post(http, live_server, {"Image": image, "Mode": 7})) == "InvalidParameterValue"
    response = signed_post(http, live_server, {"Image": image, "Mode": "1"})
    assert error_code(response) == "InvalidParameter.InvalidParameter"
    assert error_code(signed_post(http, live_server, {"Image": 5})) == "InvalidParameter.InvalidParameter"
    assert (
        error_code(signed_post(http, live_server, {"Image": image, "NeedRotateDetection": 2}))
        == "InvalidParameterValue"
    )
    response = signed_post(http, live_server, {"Image": image, "FaceModelVersion": "2.0"})
    assert error_code(response) == "InvalidParameterValue.FaceModelVersionIllegal"


def test_raw_chunked_body_over_10_mb(http: httpx.Client, live_server: LiveServer) -> None:
    """No Content-Length: the cap applies while streaming."""
    chunk = b"A" * (1024 * 1024)
    body = b'{"Image": "' + chunk * 11 + b'"}'
    headers = sign_tc3_request(
        live_server.secret_id,
        live_server.secret_key,
        host=live_server.endpoint,
        action=ACTION,
        version=V2020,
        timestamp=int(time.time()),
        payload=body,
        region=REGION,
    )

    def stream() -> Iterator[bytes]:
        for start in range(0, len(body), len(chunk)):
            yield body[start : start + len(chunk)]

    response = http.post("/", content=stream(), headers=headers)
    assert "content-length" not in response.request.headers
    assert error_code(response) == "RequestSizeLimitExceeded"


def test_raw_missing_authorization(http: httpx.Client) -> None:
    headers = {"Content-Type": "application/json", "X-TC-Action": ACTION, "X-TC-Version": V2020}
    assert error_code(http.post("/", content=b"{}", headers=headers)) == "AuthFailure.InvalidAuthorization"


def test_raw_messages_localized(http: httpx.Client, live_server: LiveServer) -> None:
    messages = {}
    for language in ("zh-CN", "en-US"):
        response = signed_post(http, live_server, {"Mode": 7}, language=language)
        assert error_code(response) == "InvalidParameterValue"
        messages[language] = response.json()["Response"]["Error"]["Message"]
    assert messages["zh-CN"] != messages["en-US"]


def _request_counts(http: httpx.Client) -> dict[str, float]:
    """``denseface_requests_total`` by code, from ``/metrics``."""
    counts: dict[str, float] = {}
    for line in http.get("/metrics", headers=METRICS_AUTH).text.splitlines():
        if line.startswith("denseface_requests_total{"):
            labels, value = line.rsplit(" ", 1)
            code = labels.split('code="', 1)[1].split('"', 1)[0]
            counts[code] = counts.get(code, 0.0) + float(value)
    return counts


def test_client_disconnect_mid_body_is_not_an_internal_error(
    http: httpx.Client, live_server: LiveServer
) -> None:
    before = _request_counts(http)
    head = (
        f"POST / HTTP/1.1\r\nHost: {live_server.endpoint}\r\nContent-Type: application/json\r\n"
        "Content-Length: 100000\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", live_server.port)) as sock:
        sock.sendall(head + b'{"Image": "' + b"A" * 1000)
    deadline = time.monotonic() + 5
    while sum(_request_counts(http).values()) <= sum(before.values()):
        assert time.monotonic() < deadline, "the server never finished the abandoned request"
        time.sleep(0.05)
    after = _request_counts(http)
    assert after.get("InternalError", 0) == before.get("InternalError", 0), after


def test_server_still_healthy(live_server: LiveServer, http: httpx.Client) -> None:
    """Runs last in this module: nothing above took the server down."""
    assert live_server.process.poll() is None, live_server.log()
    response = http.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert "Traceback" not in live_server.log()
