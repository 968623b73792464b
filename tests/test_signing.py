"""Signature functions against the official vectors in docs/tencent-protocol.md and the official SDK."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from tencentcloud.common.credential import Credential as TcCredential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.common.sign import Sign
from tencentcloud.iai.v20180301 import iai_client as client_2018
from tencentcloud.iai.v20180301 import models as models_2018
from tencentcloud.iai.v20200303 import iai_client as client_2020
from tencentcloud.iai.v20200303 import models as models_2020

from denseface.rpc import signing
from denseface.rpc.actions.common import parse_analyze_params
from denseface.rpc.credentials import Credential, CredentialStore
from denseface.rpc.protocol import (
    ApiCall,
    ApiError,
    envelope_for_error,
    new_request_id,
    parse_request,
    success_envelope,
)
from denseface.rpc.signing import AuthorizationFormatError

SECRET_ID = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE"
SECRET_KEY = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"
HOST = "127.0.0.1:8765"
BODY_A = b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
HEADERS_A = {
    "content-type": "application/json; charset=utf-8",
    "host": "cvm.tencentcloudapi.com",
    "x-tc-action": "DescribeInstances",
}
V1_PARAMS = {
    "Action": "DescribeInstances",
    "InstanceIds.0": "ins-09dx96dg",
    "Limit": "20",
    "Nonce": "11886",
    "Offset": "0",
    "Region": "ap-guangzhou",
    "SecretId": SECRET_ID,
    "Timestamp": "1465185768",
    "Version": "2017-03-12",
}


def test_vector_a_post_payload_canonical_and_signature() -> None:
    payload_hash = signing.sha256_hex(BODY_A)
    assert payload_hash.startswith("35e9c5b0")
    assert payload_hash.endswith("934f064")
    canonical = signing.tc3_canonical_request("POST", "", HEADERS_A, ("content-type", "host"), BODY_A)
    canonical_hash = signing.sha256_hex(canonical.encode())
    assert canonical_hash.startswith("5ffe6a04")
    assert canonical_hash.endswith("a18d7031")
    signature = signing.tc3_sign(
        SECRET_KEY,
        method="POST",
        query="",
        headers=HEADERS_A,
        signed_headers=("content-type", "host"),
        payload=BODY_A,
        timestamp=1551113065,
        service="cvm",
    )
    assert signature == "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"


def test_vector_b_signed_action_header_is_lowercased() -> None:
    signed = ("content-type", "host", "x-tc-action")
    canonical = signing.tc3_canonical_request("POST", "", HEADERS_A, signed, BODY_A)
    assert "x-tc-action:describeinstances\n" in canonical
    assert (
        signing.sha256_hex(canonical.encode())
        == "7019a55be8395899b900fb5564e4200d984910f34794a27cb3fb7d10ff6a1e84"
    )
    # The document masks its key; this value is the protocol doc author's own computation with key A.
    signature = signing.tc3_sign(
        SECRET_KEY,
        method="POST",
        query="",
        headers=HEADERS_A,
        signed_headers=signed,
        payload=BODY_A,
        timestamp=1551113065,
        service="cvm",
    )
    assert signature == "644be983de9a8a3f00db8eadaba61467c3b429e2215758ba897b738ca469fd26"


def test_vector_c_get() -> None:
    signature = signing.tc3_sign(
        SECRET_KEY,
        method="GET",
        query="Limit=10&Offset=0",
        headers={"content-type": "application/x-www-form-urlencoded", "host": "cvm.tencentcloudapi.com"},
        signed_headers=("content-type", "host"),
        payload=b"",
        timestamp=1539084154,
        service="cvm",
    )
    assert signature == "5da7a33f6993f0614b047e5df4582db9e9bf4672ba50567dba16c6ccf174c474"


def test_v1_vector_hmac_sha1() -> None:
    sign_string = signing.v1_sign_string("GET", "cvm.tencentcloudapi.com", V1_PARAMS)
    assert sign_string.startswith("GETcvm.tencentcloudapi.com/?Action=DescribeInstances&InstanceIds.0=")
    assert signing.v1_signature(SECRET_KEY, sign_string, "HmacSHA1") == "EliP9YW3pW28FpsEdkXt/+WcGeI="


def test_v1_excludes_signature_and_rewrites_underscores() -> None:
    with_signature = {**V1_PARAMS, "Signature": "whatever"}
    assert signing.v1_sign_string("GET", "h", with_signature) == signing.v1_sign_string("GET", "h", V1_PARAMS)
    assert signing.v1_sign_string("POST", "h", {"B": "1", "a_b": "2"}) == "POSTh/?B=1&a.b=2"


def test_v1_sha256_and_unknown_method() -> None:
    sign_string = signing.v1_sign_string("GET", "h", V1_PARAMS)
    assert signing.v1_signature(SECRET_KEY, sign_string, "HmacSHA256") == Sign.sign(
        SECRET_KEY, sign_string, "HmacSHA256"
    )
    with pytest.raises(ValueError, match="HmacSHA1"):
        signing.v1_signature(SECRET_KEY, sign_string, "HmacMD5")


def test_utc_date_and_scope() -> None:
    assert signing.utc_date(1551113065) == "2019-02-25"
    assert signing.utc_date(1539084154) == "2018-10-09"
    assert signing.utc_date(86399) == "1970-01-01"
    assert signing.utc_date(86400) == "1970-01-02"
    assert signing.credential_scope("2019-02-25") == "2019-02-25/iai/tc3_request"


def test_unsigned_payload_hashes_the_literal() -> None:
    canonical = signing.tc3_canonical_request("POST", "", HEADERS_A, ("host",), None)
    assert canonical.endswith(signing.sha256_hex(b"UNSIGNED-PAYLOAD"))


def test_canonical_headers_value_case() -> None:
    headers = {"host": " LocalHost:8000 ", "content-type": "application/json"}
    signed = ("content-type", "host")
    lowered = signing.canonical_headers(headers, signed, lower_values=True)
    verbatim = signing.canonical_headers(headers, signed, lower_values=False)
    assert lowered == "content-type:application/json\nhost:localhost:8000\n"
    assert verbatim == "content-type:application/json\nhost:LocalHost:8000\n"


@given(st.text(), st.text(max_size=12), st.text(max_size=8), st.text())
def test_tc3_key_chain_matches_sdk(key: str, date: str, service: str, string_to_sign: str) -> None:
    ours = signing.tc3_signature(signing.tc3_signing_key(key, date, service), string_to_sign)
    try:
        theirs = Sign.sign_tc3(key, date, service, string_to_sign)
    except UnicodeEncodeError:  # the SDK cannot encode lone surrogates; we can, so no comparison
        return
    assert ours == theirs


@given(st.text(), st.text(), st.sampled_from(signing.V1_METHODS))
def test_v1_matches_sdk(key: str, sign_string: str, method: str) -> None:
    try:
        theirs = Sign.sign(key, sign_string, method)
    except UnicodeEncodeError:
        return
    assert signing.v1_signature(key, sign_string, method) == theirs


SDK_AUTH = (
    "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/iai/tc3_request, "
    "SignedHeaders=content-type;host, "
    "Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
)


def test_parse_authorization_sdk_layout() -> None:
    auth = signing.parse_tc3_authorization(SDK_AUTH)
    assert auth == signing.Tc3Authorization(
        "TC3-HMAC-SHA256",
        SECRET_ID,
        "2019-02-25",
        "iai",
        ("content-type", "host"),
        "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168",
    )
    rebuilt = signing.format_tc3_authorization(
        auth.secret_id, auth.date, auth.service, auth.signed_headers, auth.signature
    )
    assert rebuilt == SDK_AUTH


def test_parse_authorization_tolerates_spacing() -> None:
    compact = SDK_AUTH.replace(", ", ",")
    assert signing.parse_tc3_authorization(compact) == signing.parse_tc3_authorization(SDK_AUTH)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "TC3-HMAC-SHA256",
        SDK_AUTH.replace("TC3-HMAC-SHA256", "HMAC-SHA256", 1),
        SDK_AUTH.replace("/tc3_request", "/tc2_request"),
        SDK_AUTH.replace("/2019-02-25/", "/2019-2-25/"),
        SDK_AUTH.replace("/iai/", "//"),
        SDK_AUTH.replace(SECRET_ID, ""),
        SDK_AUTH.replace("content-type;host", "host;content-type"),
        SDK_AUTH.replace("content-type;host", "content-type;content-type;host"),
        SDK_AUTH.replace("content-type;host", "host"),
        SDK_AUTH.replace("content-type;host", "Content-Type;host"),
        SDK_AUTH.replace("Signature=72e4", "Signature=72E4"),
        SDK_AUTH[:-1],
        SDK_AUTH + ", Extra=1",
        SDK_AUTH.replace("SignedHeaders=", "Signed="),
        SDK_AUTH + ", Signature=" + "0" * 64,
        SDK_AUTH.replace("Credential=", "Credential"),
        "TC3-HMAC-SHA256 " + "x" * 5000,
    ],
)
def test_parse_authorization_rejects(value: str) -> None:
    with pytest.raises(AuthorizationFormatError):
        signing.parse_tc3_authorization(value)


@given(st.text(max_size=300))
def test_parse_authorization_never_crashes(value: str) -> None:
    try:
        auth = signing.parse_tc3_authorization(value)
    except AuthorizationFormatError:
        return
    assert auth.algorithm == signing.TC3_ALGORITHM


def test_signatures_equal() -> None:
    assert signing.signatures_equal("abc", "abc")
    assert not signing.signatures_equal("abc", "abd")
    assert not signing.signatures_equal("abc", "abcd")
    assert not signing.signatures_equal("abc", "ábc")  # non-ASCII must not raise
    assert not signing.signatures_equal("abc", "\ud800")


def test_sign_tc3_request_post_layout() -> None:
    headers = signing.sign_tc3_request(
        SECRET_ID,
        SECRET_KEY,
        host="cvm.tencentcloudapi.com",
        action="DescribeInstances",
        version="2017-03-12",
        timestamp=1551113065,
        payload=BODY_A,
        content_type="application/json; charset=utf-8",
        service="cvm",
        region="ap-guangzhou",
        token="tok",
        language="en-US",
    )
    assert headers["Authorization"] == SDK_AUTH.replace("/iai/", "/cvm/")
    assert headers["X-TC-Timestamp"] == "1551113065"
    assert headers["X-TC-Action"] == "DescribeInstances"
    assert headers["X-TC-Version"] == "2017-03-12"
    assert headers["X-TC-Region"] == "ap-guangzhou"
    assert headers["X-TC-Token"] == "tok"
    assert headers["X-TC-Language"] == "en-US"
    assert "X-TC-Content-SHA256" not in headers


def test_sign_tc3_request_get_and_unsigned() -> None:
    get = signing.sign_tc3_request(
        SECRET_ID,
        SECRET_KEY,
        host="cvm.tencentcloudapi.com",
        action="DescribeInstances",
        version="2017-03-12",
        timestamp=1539084154,
        method="GET",
        query="Limit=10&Offset=0",
        service="cvm",
    )
    assert get["Content-Type"] == "application/x-www-form-urlencoded"
    assert get["Authorization"].endswith(
        "Signature=5da7a33f6993f0614b047e5df4582db9e9bf4672ba50567dba16c6ccf174c474"
    )
    assert "X-TC-Region" not in get

    unsigned = signing.sign_tc3_request(
        SECRET_ID, SECRET_KEY, host="h", action="A", version="v", timestamp=0, unsigned_payload=True
    )
    assert unsigned["X-TC-Content-SHA256"] == "UNSIGNED-PAYLOAD"
    expected = signing.tc3_sign(
        SECRET_KEY,
        method="POST",
        query="",
        headers={"content-type": "application/json", "host": "h"},
        signed_headers=("content-type", "host"),
        payload=None,
        timestamp=0,
    )
    assert unsigned["Authorization"].endswith("Signature=" + expected)


# --------------------------------------------------------------------------- the official SDK, end to end
NOW = 1_700_000_000
STORE = CredentialStore([Credential(SECRET_ID, SECRET_KEY)])
SUCCESS = {"ImageWidth": 640, "ImageHeight": 480, "DenseFaceShapeSet": [], "FaceModelVersion": "3.0"}


def test_sdk_sign_tc3_string_accepted_by_verifier() -> None:
    """Canonical request built as the SDK does (abstract_client.py) and signed with ``Sign.sign_tc3``."""
    body = json.dumps({"Image": "aGk=", "Mode": 0})
    date = signing.utc_date(NOW)
    canonical = (
        f"POST\n/\n\ncontent-type:application/json\nhost:{HOST}\n\ncontent-type;host\n"
        + hashlib.sha256(body.encode()).hexdigest()
    )
    string_to_sign = (
        f"TC3-HMAC-SHA256\n{NOW}\n{date}/iai/tc3_request\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    )
    signature = Sign.sign_tc3(SECRET_KEY, date, "iai", string_to_sign)
    headers = {
        "Content-Type": "application/json",
        "Host": HOST,
        "X-TC-Action": "AnalyzeDenseLandmarks",
        "X-TC-Timestamp": str(NOW),
        "X-TC-Version": "2018-03-01",
        "Authorization": f"TC3-HMAC-SHA256 Credential={SECRET_ID}/{date}/iai/tc3_request, "
        f"SignedHeaders=content-type;host, Signature={signature}",
    }
    call = parse_request("POST", "", headers, body.encode(), now=NOW, credentials=STORE)
    assert call.params == {"Image": "aGk=", "Mode": 0}


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("sign_method", ["HmacSHA1", "HmacSHA256"])
def test_sdk_sign_v1_accepted_by_verifier(method: str, sign_method: str) -> None:
    params = {"Action": "AnalyzeDenseLandmarks", "Version": "2018-03-01", "Timestamp": str(NOW)}
    params |= {"Nonce": "42", "SecretId": SECRET_ID, "SignatureMethod": sign_method, "Url": "http://x/y"}
    sign_string = method + HOST + "/?" + "&".join(f"{k}={params[k]}" for k in sorted(params))
    params["Signature"] = Sign.sign(SECRET_KEY, sign_string, sign_method)
    encoded = urlencode(params)
    query, body = (encoded, b"") if method == "GET" else ("", encoded.encode())
    headers = {"Host": HOST, "Content-Type": "application/x-www-form-urlencoded"}
    call = parse_request(method, query, headers, body, now=NOW, credentials=STORE)
    assert call.params == {"Url": "http://x/y"}


class FakeServer:
    """Stands in for the network under ``requests.Session.send``: our parser answers the SDK's request."""

    def __init__(self, skew: float = 0.0) -> None:
        self.skew = skew
        self.calls: list[ApiCall] = []

    def send(self, request: requests.PreparedRequest, **_: Any) -> requests.Response:
        url = urlsplit(str(request.url))
        body = request.body or b""
        body = body.encode() if isinstance(body, str) else body
        request_id = new_request_id()
        try:
            call = parse_request(
                str(request.method), url.query, dict(request.headers), body,
                now=time.time() + self.skew, credentials=STORE,
            )  # fmt: skip
            parse_analyze_params(call.params, from_query=call.from_query)
            self.calls.append(call)
            envelope = success_envelope(SUCCESS, request_id)
        except ApiError as error:
            envelope = envelope_for_error(error, request_id)
        response = requests.Response()
        response.status_code = 200
        response.headers["Content-Type"] = "application/json"
        response._content = json.dumps(envelope).encode()
        response.request = request
        return response


def sdk_client(
    module: Any, *, key: str = SECRET_KEY, region: str = "ap-guangzhou", token: str | None = None, **http: Any
) -> Any:
    sign_method = http.pop("sign_method", "TC3-HMAC-SHA256")
    language = http.pop("language", "zh-CN")
    unsigned = http.pop("unsigned", False)
    http_profile = HttpProfile(**{"protocol": "http", "endpoint": HOST, **http})
    profile = ClientProfile(signMethod=sign_method, httpProfile=http_profile, language=language)
    profile.unsignedPayload = unsigned
    return module.IaiClient(TcCredential(SECRET_ID, key, token), region, profile)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    fake = FakeServer()
    monkeypatch.setattr(requests.Session, "send", lambda _session, request, **kw: fake.send(request, **kw))
    return fake


SDK_MODES = [
    {},
    {"reqMethod": "GET"},
    {"sign_method": "HmacSHA1"},
    {"sign_method": "HmacSHA256", "reqMethod": "GET"},
    {"sign_method": "HmacSHA256", "reqMethod": "POST"},
    {"language": "en-US"},
    {"unsigned": True},
    {"unsigned": True, "reqMethod": "GET"},
    {"endpoint": "http://" + HOST},  # what tccli sends
    {"endpoint": "localhost:8765"},
]


@pytest.mark.parametrize("mode", SDK_MODES, ids=lambda mode: ",".join(f"{k}={v}" for k, v in mode.items()))
@pytest.mark.parametrize(
    ("client", "models"), [(client_2018, models_2018), (client_2020, models_2020)], ids=["2018", "2020"]
)
def test_official_sdk_round_trip(server: FakeServer, mode: dict[str, Any], client: Any, models: Any) -> None:
    request = models.AnalyzeDenseLandmarksRequest()
    request.Url = "https://example.com/face_1.jpg?a=b&c=d e"
    request.Mode = 1
    request.NeedRotateDetection = 0
    response = sdk_client(client, token="temporary", **mode).AnalyzeDenseLandmarks(request)
    assert response.ImageWidth == 640
    assert response.FaceModelVersion == "3.0"
    (call,) = server.calls
    assert call.sign_method == mode.get("sign_method", "TC3-HMAC-SHA256")
    assert call.token == "temporary"
    assert call.language == mode.get("language", "zh-CN")
    expected = {"Url": request.Url, "Mode": 1, "NeedRotateDetection": 0}
    if call.from_query:
        expected = {k: str(v) for k, v in expected.items()}
    assert call.params == expected


def test_official_sdk_2018_without_region(server: FakeServer) -> None:
    request = models_2018.AnalyzeDenseLandmarksRequest()
    request.Image = "aGk="
    assert sdk_client(client_2018, region="").AnalyzeDenseLandmarks(request).ImageHeight == 480
    assert server.calls[0].region is None


def test_official_sdk_v1_underscore_quirk(server: FakeServer) -> None:
    """The SDK signs ``Need_Rotate`` as ``Need.Rotate``; the signature passes, the name is then unknown."""
    client = sdk_client(client_2020, sign_method="HmacSHA256")
    with pytest.raises(TencentCloudSDKException) as info:
        client.call("AnalyzeDenseLandmarks", {"Image": "aGk=", "Need_Rotate": 1})
    assert info.value.get_code() == "UnknownParameter"
    assert "Need_Rotate" in info.value.get_message()


@pytest.mark.parametrize(
    ("client_kwargs", "skew", "code"),
    [
        ({"key": "wrong-key"}, 0, "AuthFailure.SignatureFailure"),
        ({"key": "wrong-key", "sign_method": "HmacSHA256"}, 0, "AuthFailure.SignatureFailure"),
        ({}, 600, "AuthFailure.SignatureExpire"),
        ({"region": ""}, 0, "MissingParameter"),
    ],
)
def test_official_sdk_errors(
    server: FakeServer, client_kwargs: dict[str, Any], skew: float, code: str
) -> None:
    server.skew = skew
    request = models_2020.AnalyzeDenseLandmarksRequest()
    request.Image = "aGk="
    with pytest.raises(TencentCloudSDKException) as info:
        sdk_client(client_2020, **client_kwargs).AnalyzeDenseLandmarks(request)
    assert info.value.get_code() == code
    assert info.value.get_request_id()


# -------------------------------------------------------------- the service the Node.js and Java SDKs sign
@pytest.mark.parametrize(
    ("host", "service"),
    [
        ("iai.tencentcloudapi.com", "iai"),
        ("127.0.0.1:8000", "127"),  # the Node.js/Java SDKs: endpoint.split(".")[0]
        ("localhost:8000", "localhost:8000"),  # no dot: the port stays
        ("localhost", "localhost"),
        ("faces.example.internal", "faces"),
        ("faces.example.internal:443", "faces"),
        ("[::1]:8000", "[::1]:8000"),
        ("http://127.0.0.1:8000", "127"),  # tccli's literal Host
        ("HTTPS://Faces.Example:8443", "Faces"),
        ("  127.0.0.1:8000 ", "127"),
        ("", None),
        (" ", None),
        (".", None),
        ("..", None),
        (".iai.tencentcloudapi.com", None),
        ("http://", None),
        ("http://.x", None),
        ("127.0.0.1:8000/evil", "127"),  # only the first label counts
        ("evil/127.0.0.1", None),
        ("a b.example", None),
        ("iai\r\n.x", None),
        ("ünïcode.example", None),
        ("user@host.example", None),
        ("ftp://127.0.0.1", None),
        ("http://http://127.0.0.1", None),
        ("x" * 129 + ".example", None),
        ("a,b.example", None),
        ("a/b", None),
    ],
)
def test_endpoint_service(host: str, service: str | None) -> None:
    assert signing.endpoint_service(host) == service


@pytest.mark.parametrize(
    ("service", "host", "accepted"),
    [
        ("iai", "127.0.0.1:8000", True),  # the Python SDK, tccli, the Go SDK
        ("iai", "", True),
        ("127", "127.0.0.1:8000", True),
        ("127", "http://127.0.0.1:8000", True),
        ("localhost:8000", "localhost:8000", True),
        ("LOCALHOST:8000", "localhost:8000", True),  # host names ignore case
        ("faces", "faces.example.internal", True),
        ("localhost", "localhost:8000", False),  # the SDKs would have kept the port
        ("128", "127.0.0.1:8000", False),
        ("cvm", "127.0.0.1:8000", False),  # matches neither: SignatureFailure in the verifier
        ("example", "faces.example.internal", False),
        ("IAI", "127.0.0.1:8000", False),
        ("", "", False),
        ("", ".x", False),
        ("http", "http://127.0.0.1:8000", False),
        ("127", ".127.0.0.1", False),
        ("127", "", False),
    ],
)
def test_service_accepted(service: str, host: str, accepted: bool) -> None:
    assert signing.service_accepted(service, host) is accepted


@given(st.text(max_size=40), st.text(max_size=40))
def test_service_accepted_only_iai_or_the_hosts_first_label(service: str, host: str) -> None:
    if not signing.service_accepted(service, host):
        return
    bare = host.strip()
    for scheme in ("http://", "https://"):
        if bare.lower().startswith(scheme):
            bare = bare[len(scheme) :]
    assert service == "iai" or service.lower() == bare.split(".")[0].lower()
    assert "." not in service
    assert "/" not in service


@pytest.mark.parametrize(
    ("host", "bare"),
    [
        ("127.0.0.1:8000", "127.0.0.1"),
        ("localhost:8000", "localhost"),
        ("localhost", "localhost"),
        ("[::1]:8000", "[::1]"),
        ("[::1]", "[::1]"),
        ("iai.tencentcloudapi.com", "iai.tencentcloudapi.com"),
        ("host:", "host"),
    ],
)
def test_host_without_port(host: str, bare: str) -> None:
    assert signing.host_without_port(host) == bare


def test_canonical_variants_cover_case_and_port() -> None:
    headers = {"content-type": "application/json", "host": "LocalHost:8000"}
    variants = signing.tc3_canonical_variants("POST", "", headers, ("content-type", "host"), b"{}")
    hosts = sorted(line for v in variants for line in v.split("\n") if line.startswith("host:"))
    assert hosts == ["host:LocalHost", "host:LocalHost:8000", "host:localhost", "host:localhost:8000"]
    without_port = {"content-type": "application/json", "host": "iai.tencentcloudapi.com"}
    assert len(signing.tc3_canonical_variants("POST", "", without_port, ("content-type", "host"), b"")) == 1
    payload_hash = signing.sha256_hex(b"{}")
    assert all(v.endswith(payload_hash) for v in variants)


def test_parse_authorization_accepts_endpoint_services() -> None:
    for service in ("127", "localhost:8000", "[::1]:8000", "Faces", "my_svc-1"):
        value = SDK_AUTH.replace("/iai/", f"/{service}/")
        assert signing.parse_tc3_authorization(value).service == service
    for service in ("a b", "x" * 129, "a.b", "a,b"):
        with pytest.raises(AuthorizationFormatError):
            signing.parse_tc3_authorization(SDK_AUTH.replace("/iai/", f"/{service}/"))
