"""Signature functions against the official vectors in docs/tencent-protocol.md and the official SDK."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tencentcloud.common.sign import Sign

from denseface.rpc import signing
from denseface.rpc.signing import AuthorizationFormatError

SECRET_ID = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE"
SECRET_KEY = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"
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
