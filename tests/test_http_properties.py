"""Property tests over real HTTP against a real ``denseface serve``.

Whatever arrives — random bodies, methods, headers, Authorization strings, X-TC-* values, query strings,
and random or damaged image bytes inside correctly signed requests of every form — the answer is what the
server promises for that request (:func:`promised`, a copy of its documented routing): the page for
``GET /`` with an empty query and no ``Authorization``, otherwise HTTP 200, ``Content-Type:
application/json`` exactly, a ``{"Response": ...}`` envelope with a uuid ``RequestId``, and for errors a
``Code`` the server documents (never ``InternalError`` or ``FailedOperation.ServerError``). Every
generated request is judged by what was actually sent (``response.request``), not by what the test meant
to send. Afterwards the server is healthy and its memory has not grown.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from denseface import errors
from denseface.rpc.signing import sign_tc3_request, v1_sign_string, v1_signature
from denseface.server.app import ERROR_CODES
from tests.conftest import LiveServer, shared

ACTION = "AnalyzeDenseLandmarks"
REGION = "ap-guangzhou"


def _error_classes(cls: type[errors.DensefaceError]) -> Iterator[type[errors.DensefaceError]]:
    yield cls
    for sub in cls.__subclasses__():
        yield from _error_classes(sub)


#: Every code the server documents, less the two that mean it failed: a bug (InternalError) or a failed
#: model run (ServerError, which would also hide an engine bug raising ValueError). Random input must
#: produce neither.
DOCUMENTED_CODES = ERROR_CODES - {"InternalError", "FailedOperation.ServerError"}
IMAGE_CODES = frozenset(cls.code for cls in _error_classes(errors.ImageError)) | {
    "InvalidParameterValue.NoFaceInPhoto",
    "FailedOperation.FaceSizeTooSmall",
    "RequestSizeLimitExceeded",  # a large random image in a GET query
}
SHAPE_FIELDS = {"X", "Y", "Width", "Height", "LeftEye", "RightEye", "LeftEyeBrow", "RightEyeBrow"} | {
    "MouthOutside",
    "MouthInside",
    "Nose",
    "LeftPupil",
    "RightPupil",
    "CentralAxis",
    "Chin",
    "LeftEyeBags",
    "RightEyeBags",
    "Forehead",
}

PROPERTY_SETTINGS = settings(  # deadline, database and derandomizing come from the profile (conftest)
    max_examples=60,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
MAX_RSS_GROWTH_KB = 100 * 1024


# ---------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def http(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.base_url, timeout=30) as client:
        yield client


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


@pytest.fixture(scope="module")
def photo() -> bytes:
    """A small real two-face JPEG (fits a GET query)."""
    with Image.open(shared("robustness", "face_recognition", "two_people.jpg")) as image:
        image.thumbnail((320, 320))
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, "JPEG", quality=70)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def baseline_rss(live_server: LiveServer, http: httpx.Client, photo: bytes) -> int:
    """Server RSS after a warm-up inference (first-use allocations are not growth)."""
    for _ in range(3):
        inner = envelope(tc3_post(http, live_server, {"Image": base64.b64encode(photo).decode()}))
        assert len(inner["DenseFaceShapeSet"]) == 2
    return rss_kb(live_server.process.pid)


# ------------------------------------------------------------------------------------------ checks
def promised(request: httpx.Request) -> str:
    """What the server promises for a request, as sent: ``"page"``, ``"api"`` or ``"elsewhere"``.

    A copy of the routing documented in :mod:`denseface.server.app`: ``GET /`` with an empty query
    string and no ``Authorization`` header is the page; every other request to ``/`` is an API call
    (other methods included). ``raw_path`` is the request target on the wire, after the client's own
    rewriting (a ``#`` starts a fragment, which is never sent, so ``/?#x`` goes out as ``/?``).
    """
    path, _, query = request.url.raw_path.partition(b"?")
    if path != b"/":  # /healthz, /metrics, /static/…: not what these properties are about
        return "elsewhere"
    if request.method == "GET" and not query and "authorization" not in request.headers:
        return "page"
    return "api"


def answer(response: httpx.Response) -> dict[str, Any] | None:
    """Judge a response by :func:`promised`: ``None`` for the page (checked), else the ``Response``."""
    promise = promised(response.request)
    assert promise != "elsewhere", f"these properties only send to /, not {response.request.url}"
    if promise == "page":
        assert response.status_code == 200, response.text[:500]
        assert response.headers["content-type"].startswith("text/html")
        assert "<html" in response.text.lower()
        event("page")
        return None
    return envelope(response)


def envelope(response: httpx.Response) -> dict[str, Any]:
    """The ``Response`` object, after checking status, content type and envelope shape."""
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert isinstance(body, dict)
    assert set(body) == {"Response"}
    inner: dict[str, Any] = body["Response"]
    assert isinstance(inner, dict)
    assert isinstance(inner.get("RequestId"), str)
    uuid.UUID(inner["RequestId"])
    if "Error" in inner:
        assert set(inner) == {"Error", "RequestId"}, inner
        error = inner["Error"]
        assert set(error) == {"Code", "Message"}, error
        assert error["Code"] in DOCUMENTED_CODES, error
        assert isinstance(error["Message"], str)
        assert error["Message"]
    else:
        assert set(inner) == {
            "ImageWidth",
            "ImageHeight",
            "DenseFaceShapeSet",
            "FaceModelVersion",
            "RequestId",
        }
        assert inner["FaceModelVersion"] == "3.0"
        assert 1 <= len(inner["DenseFaceShapeSet"]) <= 5
        for shape in inner["DenseFaceShapeSet"]:
            assert set(shape) == SHAPE_FIELDS
            assert sum(len(v) for v in shape.values() if isinstance(v, list)) == 888
    return inner


def code_of(inner: dict[str, Any]) -> str | None:
    error = inner.get("Error")
    code = None if error is None else str(error["Code"])
    event(code or "success")  # shown by --hypothesis-show-statistics
    return code


# ------------------------------------------------------------------------------------- request forms
def tc3_post(
    http: httpx.Client,
    server: LiveServer,
    params: Any,
    *,
    body: bytes | None = None,
    version: str = "2020-03-03",
) -> httpx.Response:
    payload = json.dumps(params).encode() if body is None else body
    headers = sign_tc3_request(
        server.secret_id,
        server.secret_key,
        host=server.endpoint,
        action=ACTION,
        version=version,
        timestamp=int(time.time()),
        payload=payload,
        region=REGION,
    )
    return http.post("/", content=payload, headers=headers)


def tc3_get(http: httpx.Client, server: LiveServer, params: dict[str, str]) -> httpx.Response:
    query = urlencode(params)
    headers = sign_tc3_request(
        server.secret_id,
        server.secret_key,
        host=server.endpoint,
        action=ACTION,
        version="2020-03-03",
        timestamp=int(time.time()),
        method="GET",
        query=query,
        region=REGION,
    )
    return http.get(f"/?{query}", headers=headers)


NONCES = itertools.count(100_000)


def v1_request(
    http: httpx.Client, server: LiveServer, method: str, params: dict[str, str], sign_method: str
) -> httpx.Response:
    full = {
        **params,
        "Action": ACTION,
        "Version": "2020-03-03",
        "Region": REGION,
        "Timestamp": str(int(time.time())),
        "Nonce": str(next(NONCES)),  # a fresh one per request, as the SDKs do: a repeat is a replay
        "SecretId": server.secret_id,
        "SignatureMethod": sign_method,
    }
    full["Signature"] = v1_signature(
        server.secret_key, v1_sign_string(method, server.endpoint, full), sign_method
    )
    form = urlencode(full)
    content_type = {"Content-Type": "application/x-www-form-urlencoded"}
    if method == "GET":
        return http.get(f"/?{form}", headers=content_type)
    return http.post("/", content=form.encode(), headers=content_type)


def send_image(http: httpx.Client, server: LiveServer, data: bytes, form: str) -> dict[str, Any]:
    b64 = base64.b64encode(data).decode("ascii")
    if len(b64) > 40_000:  # the HTTP client refuses URLs over 64 KB; 32-40 KB still tests the GET cap
        form = form.replace("tc3-get", "tc3-post").replace("get-", "post-")
    if form == "tc3-post":
        response = tc3_post(http, server, {"Image": b64})
    elif form == "tc3-get":
        response = tc3_get(http, server, {"Image": b64})
    else:
        method, sign_method = form.split("-", 1)
        response = v1_request(http, server, method.upper(), {"Image": b64}, sign_method)
    inner = answer(response)
    assert inner is not None  # signed or carrying a query: never the page
    return inner


# -------------------------------------------------------------------------------------- strategies
# header values the HTTP client can put on the wire (visible ASCII and obs-text, inner spaces/tabs)
_HEADER_CHARS = [*range(0x21, 0x7F), *range(0x80, 0x100)]
header_values = st.one_of(
    st.just(b""),
    st.builds(
        lambda first, rest: bytes([first, *rest]).rstrip(b" \t") or bytes([first]),
        st.sampled_from(_HEADER_CHARS),
        st.lists(st.sampled_from([*_HEADER_CHARS, 0x20, 0x09]), max_size=200),
    ),
)
text_values = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text_values,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text_values, inner, max_size=4),
    max_leaves=12,
)
known_params = st.sampled_from(["Mode", "Image", "Url", "FaceModelVersion", "NeedRotateDetection"])
param_values = st.one_of(
    json_values,
    st.sampled_from([0, 1, 2, -1, "0", "1", "3.0", "2.0", "", "http://", "ftp://x", "aGVsbG8="]),
    st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode()),
)
content_types = st.sampled_from(
    [
        None,
        "application/json",
        "application/json; charset=utf-8",
        "application/x-www-form-urlencoded",
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/octet-stream",
    ]
)
methods = st.sampled_from(["GET", "POST"] * 4 + ["PUT", "DELETE", "PATCH", "OPTIONS"])


def _valid_authorization(secret_id: str) -> str:
    return (
        f"TC3-HMAC-SHA256 Credential={secret_id}/{time.strftime('%Y-%m-%d', time.gmtime())}/iai/tc3_request, "
        f"SignedHeaders=content-type;host, Signature={'0' * 64}"
    )


@st.composite
def authorizations(draw: st.DrawFn) -> str | bytes | None:
    """Absent, random bytes, TC3-shaped with random parts, or well-formed (``valid-shape``: a real
    SecretId and today's date, but a wrong signature)."""
    kind = draw(st.sampled_from(["absent", "random", "template", "valid-shape", "valid-shape"]))
    if kind == "absent":
        return None
    if kind == "random":
        value: bytes = draw(header_values)
        return value
    if kind == "valid-shape":
        return kind
    cred = draw(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=60))
    signed = draw(st.sampled_from(["content-type;host", "host", "content-type;host;x-tc-action", "", "x;y"]))
    signature = draw(st.text("0123456789abcdef", min_size=0, max_size=70))
    return f"TC3-HMAC-SHA256 Credential={cred}, SignedHeaders={signed}, Signature={signature}"


tc_headers = st.dictionaries(
    st.sampled_from(
        [
            "X-TC-Action",
            "X-TC-Version",
            "X-TC-Timestamp",
            "X-TC-Region",
            "X-TC-Language",
            "X-TC-Token",
            "X-TC-Content-SHA256",
            "X-TC-RequestClient",
            "Content-Type",
            "Host",
        ]
    ),
    st.one_of(
        header_values,
        st.sampled_from(
            [b"AnalyzeDenseLandmarks", b"2020-03-03", b"2018-03-01", b"en-US", b"zh-CN", b"UNSIGNED-PAYLOAD"]
        ),
        st.integers(-(2**64), 2**64).map(lambda n: str(n).encode()),
        st.builds(lambda: str(int(time.time())).encode()),  # the time of the draw, not of the import
    ),
    max_size=4,
)


@st.composite
def image_bytes(draw: st.DrawFn, photo: bytes) -> bytes:
    """Random bytes, damaged real JPEGs, or synthetic images of random format and size."""
    kind = draw(st.sampled_from(["random", "damaged", "truncated", "synthetic", "header"]))
    if kind == "random":
        return draw(st.binary(max_size=4096))
    if kind == "damaged":
        data = bytearray(photo)
        for _ in range(draw(st.integers(1, 20))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    if kind == "truncated":
        return photo[: draw(st.integers(0, len(photo)))]
    if kind == "header":  # a real signature followed by junk
        magic = draw(st.sampled_from([b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"GIF89a", b"RIFF"]))
        return magic + draw(st.binary(max_size=512))
    width = draw(st.integers(1, 700))
    height = draw(st.integers(1, 700))
    mode = draw(st.sampled_from(["RGB", "L", "RGBA", "P", "1"]))
    fmt = draw(st.sampled_from(["PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP"]))
    color = draw(st.integers(0, 255))
    image = Image.effect_noise((width, height), draw(st.integers(0, 100))).point(lambda v: (v + color) % 256)
    image = image.convert(mode)
    if fmt == "JPEG" and mode not in ("RGB", "L"):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


# -------------------------------------------------------------------------------------- properties
@PROPERTY_SETTINGS
@given(method=methods, body=st.binary(max_size=2048), content_type=content_types, sign=st.booleans())
def test_random_bodies(
    http: httpx.Client,
    live_server: LiveServer,
    baseline_rss: int,
    method: str,
    body: bytes,
    content_type: str | None,
    sign: bool,
) -> None:
    if sign and method in ("GET", "POST"):
        headers = sign_tc3_request(
            live_server.secret_id,
            live_server.secret_key,
            host=live_server.endpoint,
            action=ACTION,
            version="2020-03-03",
            timestamp=int(time.time()),
            method=method,
            payload=body,
            region=REGION,
            content_type=content_type,
        )
        if content_type is None:
            del headers["Content-Type"]
    else:
        headers = {"Content-Type": content_type} if content_type else {}
        headers["X-TC-Action"] = ACTION
    response = http.request(method, "/?x=1" if method == "GET" else "/", content=body, headers=headers)
    inner = answer(response)
    assert inner is not None  # never the page: a query or another method
    code = code_of(inner)
    assert code is not None  # nothing here is a valid call
    if method not in ("GET", "POST"):
        assert code == "UnsupportedProtocol"


@PROPERTY_SETTINGS
@given(
    params=st.dictionaries(known_params, param_values, max_size=5),
    unknown=st.dictionaries(text_values, json_values, max_size=1),
    version=st.sampled_from(["2020-03-03", "2018-03-01"]),
)
def test_random_json_parameters(
    http: httpx.Client,
    live_server: LiveServer,
    baseline_rss: int,
    params: dict[str, Any],
    unknown: dict[str, Any],
    version: str,
) -> None:
    inner = answer(tc3_post(http, live_server, {**unknown, **params}, version=version))
    assert inner is not None
    code = code_of(inner)
    assert code is not None  # no real image among these
    assert not code.startswith("AuthFailure"), inner  # correctly signed


@PROPERTY_SETTINGS
@given(authorization=authorizations(), extra=tc_headers, body=st.sampled_from([b"", b"{}", b'{"Mode": 0}']))
def test_random_headers(
    http: httpx.Client,
    live_server: LiveServer,
    baseline_rss: int,
    authorization: str | bytes | None,
    extra: dict[str, bytes],
    body: bytes,
) -> None:
    headers: dict[str, str | bytes] = {
        "Content-Type": "application/json",
        "X-TC-Action": ACTION,
        "X-TC-Version": "2020-03-03",
        "X-TC-Region": REGION,
        "X-TC-Timestamp": str(int(time.time())),
        **extra,
    }
    if authorization == "valid-shape":
        authorization = _valid_authorization(live_server.secret_id)
    if authorization is not None:
        headers["Authorization"] = authorization
    inner = answer(http.post("/", content=body, headers=headers))
    assert inner is not None
    code = code_of(inner)
    # nothing here carries a valid signature
    assert code is not None
    assert code not in ("InvalidParameterValue.ImageEmpty", "UnknownParameter")


@PROPERTY_SETTINGS
@given(
    raw=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=300),
    pairs=st.dictionaries(
        st.sampled_from(
            ["Action", "Version", "Region", "Timestamp", "Nonce", "SecretId", "Signature", "SignatureMethod"]
        )
        | text_values,
        text_values,
        max_size=10,
    ),
    use_pairs=st.booleans(),
    v1_base=st.booleans(),
    authorization=st.sampled_from([False, False, False, True]),
    method=st.sampled_from(["GET", "POST"]),
)
# a fresh clone's CI once drew raw="#": the client sends `GET /?`, which is the page
@example(raw="#", pairs={}, use_pairs=False, v1_base=False, authorization=False, method="GET")
@example(raw="x", pairs={}, use_pairs=True, v1_base=False, authorization=False, method="GET")
@example(raw="#", pairs={}, use_pairs=False, v1_base=False, authorization=True, method="GET")
def test_random_query_strings(
    http: httpx.Client,
    live_server: LiveServer,
    baseline_rss: int,
    raw: str,
    pairs: dict[str, str],
    use_pairs: bool,
    v1_base: bool,
    authorization: bool,
    method: str,
) -> None:
    if v1_base:  # every required v1 parameter, a wrong signature, then the random ones on top
        base = {
            "Action": ACTION,
            "Version": "2020-03-03",
            "Region": REGION,
            "Timestamp": str(int(time.time())),
            "Nonce": "1",
            "SecretId": live_server.secret_id,
            "Signature": "c2lnbmF0dXJl",
        }
        pairs = {**base, **pairs}
    query = urlencode(pairs) if use_pairs or v1_base else raw
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if authorization:
        headers["Authorization"] = _valid_authorization(live_server.secret_id)
    if method == "GET":
        response = http.get(f"/?{query}", headers=headers)
    else:
        response = http.post("/", content=query.encode(), headers=headers)
    inner = answer(response)
    if inner is not None:  # an API call: none of these is valid
        assert code_of(inner) is not None


@PROPERTY_SETTINGS
@given(data=st.data(), form=st.sampled_from(["tc3-post", "tc3-get", "get-HmacSHA1", "post-HmacSHA256"]))
def test_random_images_in_signed_requests(
    http: httpx.Client,
    live_server: LiveServer,
    baseline_rss: int,
    photo: bytes,
    data: st.DataObject,
    form: str,
) -> None:
    image = data.draw(image_bytes(photo))
    inner = send_image(http, live_server, image, form)
    code = code_of(inner)
    if code is None:
        with Image.open(io.BytesIO(image)) as decoded:
            assert (inner["ImageWidth"], inner["ImageHeight"]) in (decoded.size, decoded.size[::-1])
    else:
        assert code in IMAGE_CODES, inner
    if not image:
        assert code == "InvalidParameterValue.ImageEmpty"


def test_still_healthy_and_memory_flat(
    live_server: LiveServer, http: httpx.Client, baseline_rss: int, photo: bytes
) -> None:
    """After the properties above: the server answers, still finds faces, and has not grown."""
    assert live_server.process.poll() is None, live_server.log()
    health = http.get("/healthz")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    inner = envelope(tc3_post(http, live_server, {"Image": base64.b64encode(photo).decode()}))
    assert len(inner["DenseFaceShapeSet"]) == 2
    grown = rss_kb(live_server.process.pid) - baseline_rss
    assert grown < MAX_RSS_GROWTH_KB, f"server RSS grew by {grown / 1024:.0f} MB"
