"""The request parser: every accepted form, every error path, envelopes, messages, and fuzzing."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from denseface import errors
from denseface.rpc import envelope, signing
from denseface.rpc.catalog import IMPLEMENTED_ACTIONS
from denseface.rpc.credentials import Credential, CredentialStore
from denseface.rpc.protocol import (
    COMMON_PARAMS,
    PROTOCOL_ERROR_CODES,
    ApiCall,
    ApiError,
    envelope_for_error,
    error_envelope,
    message_for,
    new_request_id,
    parse_request,
    success_envelope,
)

SECRET_ID = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE"
SECRET_KEY = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"
NOW = 1_700_000_000
HOST = "127.0.0.1:8765"
ACTION = "AnalyzeDenseLandmarks"
STORE = CredentialStore(
    [
        Credential(SECRET_ID, SECRET_KEY),
        Credential("AKIDdisabled", "k-disabled", enabled=False),
        Credential("AKIDslow", "k-slow", qps=1.0),
    ]
)
BODY = json.dumps({"Image": "aGVsbG8=", "Mode": 1}).encode()


def tc3(
    body: bytes = BODY, *, method: str = "POST", query: str = "", **extra: Any
) -> tuple[str, str, dict[str, str], bytes]:
    """A TC3 request signed like the SDK; ``extra`` overrides sign_tc3_request's arguments."""
    options = {"host": HOST, "action": ACTION, "version": "2020-03-03", "region": "ap-guangzhou", **extra}
    secret_id, secret_key = options.pop("secret_id", SECRET_ID), options.pop("secret_key", SECRET_KEY)
    options.setdefault("timestamp", NOW)
    headers = signing.sign_tc3_request(
        secret_id, secret_key, method=method, payload=body, query=query, **options
    )
    return method, query, headers, body


def v1(
    params: Mapping[str, str] | None = None,
    *,
    method: str = "GET",
    sign_method: str = "HmacSHA1",
    secret_key: str = SECRET_KEY,
    host: str = HOST,
    drop: str = "",
    **common: str,
) -> tuple[str, str, dict[str, str], bytes]:
    fields = {
        "Action": ACTION,
        "Version": "2020-03-03",
        "Region": "ap-guangzhou",
        "Timestamp": str(NOW),
        "Nonce": "9223372036854775807",
        "SecretId": SECRET_ID,
        "SignatureMethod": sign_method,
        "RequestClient": "SDK_PYTHON_3.1.195",
        "Language": "zh-CN",
        **(params if params is not None else {"Url": "https://example.com/a.jpg", "Mode": "0"}),
        **common,
    }
    fields.pop(drop, None)
    fields["Signature"] = signing.v1_signature(
        secret_key, signing.v1_sign_string(method, host, fields), sign_method
    )
    fields.pop(drop, None)
    encoded = urlencode(fields)
    headers = {"Host": host, "Content-Type": "application/x-www-form-urlencoded"}
    if method == "GET":
        return method, encoded, headers, b""
    return method, "", headers, encoded.encode()


def parse(request: tuple[str, str, Mapping[str, str], bytes], now: float = NOW, **kwargs: Any) -> ApiCall:
    method, query, headers, body = request
    return parse_request(method, query, headers, body, now=now, credentials=STORE, **kwargs)


def error_of(request: tuple[str, str, Mapping[str, str], bytes], now: float = NOW, **kwargs: Any) -> ApiError:
    with pytest.raises(ApiError) as info:
        parse(request, now, **kwargs)
    return info.value


# ------------------------------------------------------------------------------------------ accepted forms
def test_tc3_post() -> None:
    call = parse(tc3(token="tmp-token", language="en-US"))
    assert call == ApiCall(
        action=ACTION,
        version="2020-03-03",
        region="ap-guangzhou",
        language="en-US",
        token="tmp-token",
        secret_id=SECRET_ID,
        sign_method="TC3-HMAC-SHA256",
        params={"Image": "aGVsbG8=", "Mode": 1},
        timestamp=NOW,
        from_query=False,
    )


def test_tc3_post_2018_without_region_and_default_language() -> None:
    call = parse(tc3(version="2018-03-01", region=None))
    assert (call.version, call.region, call.language) == ("2018-03-01", None, "zh-CN")


def test_tc3_get_uses_raw_query() -> None:
    query = urlencode({"Url": "https://example.com/a b.jpg?x=1", "Mode": 1})
    call = parse(tc3(b"", method="GET", query=query))
    assert call.params == {"Url": "https://example.com/a b.jpg?x=1", "Mode": "1"}
    assert call.from_query
    # A re-encoded (but equivalent) query string no longer matches the signature.
    method, _, headers, body = tc3(b"", method="GET", query=query)
    assert error_of((method, query.replace("+", "%20"), headers, body)).code == "AuthFailure.SignatureFailure"


def test_tc3_unsigned_payload() -> None:
    method, query, headers, _ = tc3(unsigned_payload=True)
    other_body = json.dumps({"Url": "https://example.com/b.jpg"}).encode()
    assert parse((method, query, headers, other_body)).params == {"Url": "https://example.com/b.jpg"}
    method, query, headers, _ = tc3()  # signed payload: any change is detected
    assert error_of((method, query, headers, BODY + b" ")).code == "AuthFailure.SignatureFailure"


def test_tc3_host_with_scheme_taken_verbatim() -> None:
    request = tc3(host="http://127.0.0.1:8765")
    assert parse(request).action == ACTION
    method, query, headers, body = request
    headers = {**headers, "Host": HOST}
    assert error_of((method, query, headers, body)).code == "AuthFailure.SignatureFailure"


def test_tc3_header_names_case_insensitive() -> None:
    method, query, headers, body = tc3()
    mixed = {
        name.upper() if i % 2 else name.lower(): value for i, (name, value) in enumerate(headers.items())
    }
    assert parse((method, query, mixed, body)).secret_id == SECRET_ID


@pytest.mark.parametrize("lower_values", [True, False])
def test_tc3_both_header_value_casings(lower_values: bool) -> None:
    host = "LocalHost:8765"
    signed = ("content-type", "host", "x-tc-action")
    headers = {"content-type": "application/json", "host": host, "x-tc-action": ACTION}
    signature = signing.tc3_sign(
        SECRET_KEY,
        method="POST",
        query="",
        headers=headers,
        signed_headers=signed,
        payload=BODY,
        timestamp=NOW,
        lower_values=lower_values,
    )
    auth = signing.format_tc3_authorization(SECRET_ID, signing.utc_date(NOW), "iai", signed, signature)
    request = {
        **headers,
        "authorization": auth,
        "x-tc-timestamp": str(NOW),
        "x-tc-version": "2018-03-01",
    }
    assert parse(("POST", "", request, BODY)).action == ACTION


@pytest.mark.parametrize(("method", "sign_method"), [("GET", "HmacSHA1"), ("POST", "HmacSHA256")])
def test_v1(method: str, sign_method: str) -> None:
    call = parse(v1(method=method, sign_method=sign_method, Token="t0k"))
    assert call.sign_method == sign_method
    assert call.params == {"Url": "https://example.com/a.jpg", "Mode": "0"}
    assert (call.token, call.language, call.region) == ("t0k", "zh-CN", "ap-guangzhou")
    assert call.request_client == "SDK_PYTHON_3.1.195"
    assert call.from_query


def test_v1_underscore_quirk_and_default_sign_method() -> None:
    assert parse(v1({"Image": "aGk=", "Need_Rotate": "1"}, drop="SignatureMethod")).params == {
        "Image": "aGk=",
        "Need_Rotate": "1",
    }


# ------------------------------------------------------------------------------------------- error paths
@pytest.mark.parametrize("method", ["PUT", "DELETE", "HEAD", "get", "OPTIONS"])
def test_unsupported_method(method: str) -> None:
    _, query, headers, body = tc3()
    assert error_of((method, query, headers, body)).code == "UnsupportedProtocol"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("", None),
        ("", ""),
        ("TC3-HMAC-SHA256", "TC2"),
        ("Signature=", "Sig="),
        (";host", ";host;x-tc-absent"),
    ],
)
def test_missing_or_malformed_authorization(old: str, new: str | None) -> None:
    method, query, headers, body = tc3()
    if new is None:
        del headers["Authorization"]
    else:
        headers["Authorization"] = headers["Authorization"].replace(old, new) if old else new
    assert error_of((method, query, headers, body)).code == "AuthFailure.InvalidAuthorization"


@pytest.mark.parametrize("name", ["Action", "Timestamp", "Nonce", "SecretId", "Signature", "Version"])
def test_v1_missing_parameter(name: str) -> None:
    error = error_of(v1(drop=name))
    assert error.code == "MissingParameter"
    assert error.detail == name
    assert error.localized("en-US") == f"The request is missing a required parameter `{name}`."
    assert name in error.localized("zh-CN")


def test_tc3_timestamp_missing_or_invalid() -> None:
    method, query, headers, body = tc3()
    assert error_of((method, query, {**headers, "X-TC-Timestamp": ""}, body)).code == "MissingParameter"
    assert error_of((method, query, {**headers, "X-TC-Timestamp": "1e9"}, body)).code == "InvalidParameter"
    assert error_of(v1(Timestamp="yesterday")).code == "InvalidParameter"
    assert error_of(v1(Nonce="-5")).code == "InvalidParameter"


@pytest.mark.parametrize("skew", [-301, 301, -86400 * 3])
def test_signature_expire(skew: int) -> None:
    assert error_of(tc3(), now=NOW + skew).code == "AuthFailure.SignatureExpire"
    assert error_of(v1(), now=NOW + skew).code == "AuthFailure.SignatureExpire"


@pytest.mark.parametrize("skew", [-300, 0, 300])
def test_skew_within_limit(skew: int) -> None:
    assert parse(tc3(), now=NOW + skew).action == ACTION
    assert parse(v1(), now=NOW + skew).action == ACTION


@pytest.mark.parametrize(("date", "service"), [("2023-11-15", "iai"), (signing.utc_date(NOW), "cvm")])
def test_credential_scope_mismatch(date: str, service: str) -> None:
    method, query, headers, body = tc3()
    good = signing.parse_tc3_authorization(headers["Authorization"])
    headers["Authorization"] = signing.format_tc3_authorization(
        SECRET_ID, date, service, good.signed_headers, good.signature
    )
    assert error_of((method, query, headers, body)).code == "AuthFailure.SignatureFailure"


def node_or_java(
    host: str, service: str, *, signed_host: str | None = None, method: str = "POST", **extra: Any
) -> tuple[str, str, dict[str, str], bytes]:
    """A TC3 request signed as the Node.js SDK (``signed_host`` = its URL's hostname) or the Java SDK
    (``signed_host`` = the endpoint) sign one: service from the endpoint, ``Host`` = ``host``."""
    query = "Mode=1&Url=https%3A%2F%2Fexample.com%2Fa.jpg" if method == "GET" else ""
    body = b"" if method == "GET" else BODY
    request = tc3(body, method=method, query=query, host=signed_host or host, service=service, **extra)
    request[2]["Host"] = host
    return request


@pytest.mark.parametrize(
    ("host", "service", "signed_host"),
    [
        ("127.0.0.1:8765", "127", "127.0.0.1"),  # Node.js: service 127, host signed without the port
        ("127.0.0.1:8765", "127", None),  # Java: the endpoint, port included, is signed
        ("localhost:8765", "localhost:8765", "localhost"),  # no dot: the port stays in the service
        ("localhost:8765", "localhost:8765", None),
        ("faces.example.internal", "faces", None),
        ("iai.tencentcloudapi.com", "iai", None),
        ("[::1]:8765", "[::1]:8765", "[::1]"),
        ("LOCALHOST:8765", "localhost:8765", "localhost"),
    ],
)
@pytest.mark.parametrize("method", ["POST", "GET"])
def test_node_and_java_sdk_signatures(host: str, service: str, signed_host: str | None, method: str) -> None:
    call = parse(node_or_java(host, service, signed_host=signed_host, method=method))
    assert (call.action, call.secret_id) == (ACTION, SECRET_ID)


@pytest.mark.parametrize(
    ("host", "service", "signed_host"),
    [
        ("127.0.0.1:8765", "128", None),  # another label
        ("127.0.0.1:8765", "cvm", None),  # another product
        ("127.0.0.1:8765", "0", "127.0.0.1"),
        ("localhost:8765", "localhost", "localhost"),  # the SDKs keep the port here
        ("localhost:8765", "localhost:8766", None),
        ("faces.example.internal", "example", None),
        ("evil.example:8765", "127", "127.0.0.1"),
        (".127.0.0.1:8765", "127", None),  # no first label
        ("", "127", None),
    ],
)
def test_other_services_are_refused(host: str, service: str, signed_host: str | None) -> None:
    error = error_of(node_or_java(host, service, signed_host=signed_host))
    assert error.code == "AuthFailure.SignatureFailure"


def test_node_style_signature_still_checks_key_date_and_host() -> None:
    good = node_or_java("127.0.0.1:8765", "127", signed_host="127.0.0.1")
    assert parse(good).action == ACTION
    wrong_key = node_or_java("127.0.0.1:8765", "127", signed_host="127.0.0.1", secret_key="wrong")
    assert error_of(wrong_key).code == "AuthFailure.SignatureFailure"
    # the signature was made for service 127: naming iai in the scope no longer verifies
    method, query, headers, body = good
    auth = signing.parse_tc3_authorization(headers["Authorization"])
    headers["Authorization"] = signing.format_tc3_authorization(
        SECRET_ID, auth.date, "iai", auth.signed_headers, auth.signature
    )
    assert error_of((method, query, headers, body)).code == "AuthFailure.SignatureFailure"
    # another host name under the same port
    method, query, headers, body = node_or_java("127.0.0.1:8765", "127", signed_host="127.0.0.2")
    assert error_of((method, query, headers, body)).code == "AuthFailure.SignatureFailure"
    # a credential date other than the timestamp's
    date = node_or_java("127.0.0.1:8765", "127", signed_host="127.0.0.1", timestamp=NOW - 86400)
    assert error_of(date).code == "AuthFailure.SignatureExpire"
    method, query, headers, body = good
    headers["Authorization"] = headers["Authorization"].replace(signing.utc_date(NOW), "2000-01-01")
    assert error_of((method, query, headers, body)).code == "AuthFailure.SignatureFailure"


def test_tccli_literal_host_with_iai_and_derived_service() -> None:
    assert parse(tc3(host="http://127.0.0.1:8765")).action == ACTION
    assert parse(node_or_java("http://127.0.0.1:8765", "127")).action == ACTION
    assert error_of(node_or_java("http://127.0.0.1:8765", "http")).code == "AuthFailure.SignatureFailure"


@pytest.mark.parametrize("secret_id", ["AKIDunknown", "AKIDdisabled"])
def test_secret_id_not_found(secret_id: str) -> None:
    assert error_of(tc3(secret_id=secret_id)).code == "AuthFailure.SecretIdNotFound"
    assert error_of(v1(SecretId=secret_id)).code == "AuthFailure.SecretIdNotFound"


def test_wrong_signature() -> None:
    error = error_of(tc3(secret_key="wrong"))
    assert error.code == "AuthFailure.SignatureFailure"
    assert error.localized("en-US") == (
        "The provided credentials could not be validated. Please check your signature is correct."
    )
    assert error_of(v1(secret_key="wrong")).code == "AuthFailure.SignatureFailure"
    method, query, headers, body = v1()
    headers["Host"] = "other:1"
    assert error_of((method, query, headers, body)).code == "AuthFailure.SignatureFailure"


def test_v1_unknown_signature_method() -> None:
    assert error_of(v1(SignatureMethod="HmacMD5")).code == "InvalidParameterValue"


def test_auth_comes_before_action_checks() -> None:
    assert error_of(tc3(action="DeleteEverything", secret_key="x")).code == "AuthFailure.SignatureFailure"
    assert error_of(v1(Action="Nope", SecretId="AKIDunknown")).code == "AuthFailure.SecretIdNotFound"


def test_action_version_region() -> None:
    assert error_of(tc3(action="DeleteEverything")).code == "InvalidAction"
    assert error_of(tc3(action="")).code == "MissingParameter"
    assert error_of(v1(Action="DescribeInstances")).code == "InvalidAction"
    assert error_of(tc3(version="2019-01-01")).code == "NoSuchVersion"
    assert error_of(v1(Version="2017-03-12")).code == "NoSuchVersion"
    assert error_of(tc3(version="")).code == "MissingParameter"
    error = error_of(tc3(region=None))
    assert (error.code, error.detail) == ("MissingParameter", "X-TC-Region")
    assert error_of(v1(Region="")).code == "MissingParameter"


@pytest.mark.parametrize("action", ["DetectFace", "SearchFaces", "DetectFaceAttributes", "VerifyPerson"])
def test_iai_action_not_implemented(action: str) -> None:
    """An action iai has (in both versions) but denseface does not implement: UnknowMethod, naming it
    and what is implemented; after authentication, like every action check."""
    for version in ("2018-03-01", "2020-03-03"):
        error = error_of(tc3(action=action, version=version))
        assert (error.code, error.detail) == ("UnsupportedOperation.UnknowMethod", action)
        assert action in error.localized("en-US")
        assert "AnalyzeDenseLandmarks, AnalyzeFace" in error.localized("en-US")
        assert "AnalyzeDenseLandmarks" in error.localized("zh-CN")
    assert error_of(v1(Action=action)).code == "UnsupportedOperation.UnknowMethod"
    assert error_of(tc3(action=action, secret_key="wrong")).code == "AuthFailure.SignatureFailure"


def test_action_of_the_other_version_only() -> None:
    """CompareMaskFace exists in 2020-03-03 only: unimplemented there, nonexistent in 2018-03-01."""
    assert error_of(tc3(action="CompareMaskFace")).code == "UnsupportedOperation.UnknowMethod"
    assert error_of(tc3(action="CompareMaskFace", version="2018-03-01")).code == "InvalidAction"
    assert error_of(tc3(action="CompareMaskFace", version="2019-01-01")).code == "NoSuchVersion"
    assert error_of(tc3(action="Nope", version="2019-01-01")).code == "InvalidAction"
    error = error_of(tc3(action="Nope"))
    assert "AnalyzeDenseLandmarks" in error.localized("en-US")


def test_language() -> None:
    assert parse(v1(Language="en-US")).language == "en-US"
    assert error_of(tc3(language="fr-FR")).code == "InvalidParameterValue"
    assert parse(tc3(language="EN-us")).language == "en-US"
    assert error_of(v1(Language="de")).code == "InvalidParameterValue"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b'"str"', "application/json"),
        (b"\xff\xfe{}", "application/json"),
        (b'{"Mode": NaN}', "application/json"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json"),
        (BODY, "text/plain"),
        (BODY, "multipart/form-data; boundary=x"),
    ],
)
def test_bad_body(body: bytes, content_type: str) -> None:
    assert error_of(tc3(body, content_type=content_type)).code == "InvalidParameter"


def test_empty_json_body_is_empty_object() -> None:
    assert parse(tc3(b"")).params == {}
    assert parse(tc3(b"", content_type="application/json; charset=utf-8")).params == {}


def test_repeated_parameter() -> None:
    method, query, headers, body = v1()
    assert error_of((method, query + "&Mode=1", headers, body)).code == "InvalidParameter"


def test_size_limits() -> None:
    assert error_of(tc3(b" " * (10 * 1024 * 1024 + 1))).code == "RequestSizeLimitExceeded"
    assert error_of(v1({"Image": "A" * (1024 * 1024)}, method="POST")).code == "RequestSizeLimitExceeded"
    assert error_of(v1({"Image": "A" * (32 * 1024)})).code == "RequestSizeLimitExceeded"


def test_error_language_follows_request() -> None:
    assert error_of(tc3(language="en-US", secret_key="x")).language == "en-US"
    assert error_of(tc3(secret_key="x")).language == "zh-CN"
    error = error_of(v1(Language="en-US", drop="Nonce"))
    assert error.language == "en-US"
    assert error.localized() == "The request is missing a required parameter `Nonce`."


# ------------------------------------------------------------------------------- envelopes and messages
def test_envelopes() -> None:
    request_id = new_request_id()
    assert uuid.UUID(request_id).version == 4
    assert success_envelope({"ImageWidth": 1}, request_id) == {
        "Response": {"ImageWidth": 1, "RequestId": request_id}
    }
    assert error_envelope("InvalidAction", "m", "r") == {
        "Response": {"Error": {"Code": "InvalidAction", "Message": "m"}, "RequestId": "r"}
    }


def test_envelope_for_error() -> None:
    engine_error = errors.ImageSizeExceedError("image is 6.1 MB; the limit is 5 MB")
    en = envelope_for_error(engine_error, "r", "en-US")["Response"]["Error"]
    zh = envelope_for_error(engine_error, "r")["Response"]["Error"]
    assert en == {"Code": "FailedOperation.ImageSizeExceed", "Message": "image is 6.1 MB; the limit is 5 MB"}
    assert zh["Message"] == message_for("FailedOperation.ImageSizeExceed", "zh-CN")
    api = envelope_for_error(ApiError("NoSuchVersion", detail="1999"), "r", "en-US")["Response"]["Error"]
    assert api["Message"] == message_for("NoSuchVersion", "en-US", "1999")
    assert (
        envelope_for_error(ApiError("InternalError", "exact"), "r")["Response"]["Error"]["Message"] == "exact"
    )


ERROR_CLASSES = [cls for cls in vars(errors).values() if isinstance(cls, type) and hasattr(cls, "code")]
ACTION_CODES = {
    "UnknownParameter",
    "InvalidParameter.InvalidParameter",
    "InvalidParameterValue.FaceModelVersionIllegal",
    "FailedOperation.ServerError",
}


@pytest.mark.parametrize(
    "code", sorted(PROTOCOL_ERROR_CODES | ACTION_CODES | {c.code for c in ERROR_CLASSES})
)
def test_every_code_has_both_languages(code: str) -> None:
    entry = envelope._messages()[code]
    for language in ("en-US", "zh-CN"):
        assert entry[language].strip()
        implemented = ", ".join(IMPLEMENTED_ACTIONS)
        assert message_for(code, language) == entry[language].replace("{implemented}", implemented)
        assert "{" not in message_for(code, language, "detail")


def test_message_fallbacks() -> None:
    assert message_for("FailedOperation.Whatever", "en-US") == message_for("FailedOperation", "en-US")
    assert message_for("Totally.Unknown", "en-US") == message_for("InternalError", "en-US")
    assert message_for("InvalidAction", "xx") == message_for("InvalidAction", "zh-CN")
    assert message_for("AuthFailure.SignatureFailure", "zh-CN", "extra").endswith("(extra)")
    assert message_for("MissingParameter", "zh-CN", "Nonce") == "请求缺少必要参数`Nonce`。"


# ----------------------------------------------------------------------------------------------- fuzzing
HEADER_NAMES = st.sampled_from(
    ["Authorization", "Content-Type", "Host", "X-TC-Timestamp", "X-TC-Action", "X-TC-Version",
     "X-TC-Region", "X-TC-Language", "X-TC-Token", "X-TC-Content-SHA256", "x-tc-action"]
)  # fmt: skip
QUERY_NAMES = st.sampled_from(
    [*("Action", "Version", "Region", "Timestamp", "Nonce", "SecretId", "Signature", "SignatureMethod"),
     *("Language", "Mode", "Url", "Image")]
)  # fmt: skip


@st.composite
def mutated_requests(draw: st.DrawFn) -> tuple[str, str, dict[str, str], bytes]:
    makers = [
        tc3,
        lambda: tc3(b"", method="GET", query="Mode=1&Url=x"),
        v1,
        lambda: v1(method="POST"),
        lambda: ("POST", "", {}, b""),
    ]
    base = draw(st.sampled_from(makers))()
    method, query, headers, body = base
    method = draw(st.sampled_from([method, method, "GET", "POST", "PUT"]) | st.text(max_size=6))
    for name, value in draw(
        st.dictionaries(HEADER_NAMES | st.text(max_size=10), st.text(max_size=80))
    ).items():
        headers[name] = value
    if draw(st.booleans()):
        query = draw(
            st.text(max_size=200)
            | st.dictionaries(QUERY_NAMES, st.text(max_size=30)).map(urlencode)
            | st.just(query + "&" + draw(st.text(max_size=20)))
        )
    if draw(st.booleans()):
        body = draw(
            st.binary(max_size=200)
            | st.recursive(
                st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                lambda inner: (
                    st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
                ),
            ).map(lambda value: json.dumps(value).encode())
        )
    return method, query, headers, body


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_requests(), st.sampled_from([NOW, NOW + 200, NOW + 400, time.time()]))
def test_fuzzed_requests_yield_call_or_documented_error(
    request: tuple[str, str, dict[str, str], bytes], now: float
) -> None:
    try:
        call: ApiCall | ApiError = parse(request, now=now)
    except ApiError as error:
        call = error
    if isinstance(call, ApiError):
        assert call.code in PROTOCOL_ERROR_CODES, call.code
        assert call.localized()
    else:
        assert call.action == ACTION
        assert call.secret_id in STORE


@given(
    st.dictionaries(
        st.text(st.characters(codec="utf-8", exclude_characters="_"), min_size=1, max_size=10).filter(
            lambda name: name not in COMMON_PARAMS
        ),
        st.text(st.characters(codec="utf-8"), max_size=30),
        max_size=5,
    ),
    st.sampled_from(["tc3_get", "v1_get", "v1_post"]),
)
def test_signed_string_params_round_trip(params: dict[str, str], kind: str) -> None:
    if kind == "tc3_get":
        request = tc3(b"", method="GET", query=urlencode(params))
    else:
        request = v1(params, method="GET" if kind == "v1_get" else "POST")
    assert parse(request).params == params
