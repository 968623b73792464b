"""The stream's query-string signature (``GET /v1/stream``): the signing helper against an independent
computation from the issue's words, and every refusal of :func:`verify_stream_query` with its code."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from denseface.rpc.credentials import Credential, CredentialStore
from denseface.rpc.envelope import ApiError
from denseface.rpc.signing import v1_sign_string, v1_signature
from denseface.rpc.stream import stream_query, stream_url, verify_stream_query
from tests.conftest import SECRET_ID, SECRET_KEY

HOST = "127.0.0.1:8000"
KEYS = CredentialStore([Credential(SECRET_ID, SECRET_KEY), Credential("AKIDoff", "k", enabled=False)])


def _verify(query: str, *, host: str = HOST, now: float | None = None) -> str:
    try:
        verify_stream_query(query, host, now=time.time() if now is None else now, credentials=KEYS)
    except ApiError as error:
        return error.code
    return "OK"


def _signed(params: dict[str, str], key: str = SECRET_KEY, host: str = HOST) -> str:
    sign = v1_sign_string("GET", host, params, "/v1/stream")
    method = params.get("SignatureMethod", "HmacSHA1")
    signature = v1_signature(key, sign, method if method in ("HmacSHA1", "HmacSHA256") else "HmacSHA256")

    return urlencode({**params, "Signature": signature})


def _params(**changes: str) -> dict[str, str]:
    params = {
        "Action": "AnalyzeDenseLandmarks",
        "Version": "2020-03-03",
        "Region": "ap-guangzhou",
        "SecretId": SECRET_ID,
        "Timestamp": str(int(time.time())),
        "Nonce": "12345",
        "SignatureMethod": "HmacSHA256",
    }
    params.update(changes)
    return {k: v for k, v in params.items() if v != ""}


def test_helper_signs_as_the_issue_says() -> None:
    """Signature = base64 HMAC-SHA256(SecretKey, "GET" + Host + "/v1/stream?" + sorted k=v joined by &),
    values as sent (not URL-encoded): computed here by hand, compared with the helper's."""
    query = stream_query(SECRET_ID, SECRET_KEY, host=HOST, timestamp=1700000000, nonce=7, mode=1)
    fields = dict(parse_qsl(query))
    given = fields.pop("Signature")
    plain = "&".join(f"{k}={fields[k]}" for k in sorted(fields))
    mac = hmac.new(SECRET_KEY.encode(), f"GET{HOST}/v1/stream?{plain}".encode(), hashlib.sha256)
    assert given == base64.b64encode(mac.digest()).decode()
    assert fields["Mode"] == "1"
    assert fields["SignatureMethod"] == "HmacSHA256"


def test_stream_url_verifies() -> None:
    url = urlsplit(stream_url(SECRET_ID, SECRET_KEY, host=HOST, version="2018-03-01", region=None))
    assert (url.scheme, url.netloc, url.path) == ("ws", HOST, "/v1/stream")
    call = verify_stream_query(url.query, HOST, now=time.time(), credentials=KEYS)
    assert (call.secret_id, call.version, call.mode, call.region) == (SECRET_ID, "2018-03-01", 0, None)


def test_values_with_reserved_characters_are_signed_decoded() -> None:
    query = _signed(_params(Region="ap guangzhou/å&="))
    assert _verify(query) == "OK"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"Timestamp": "1000"}, "AuthFailure.SignatureExpire"),
        ({"Timestamp": "soon"}, "InvalidParameter"),
        ({"Nonce": ""}, "MissingParameter"),
        ({"SecretId": "AKIDunknown"}, "AuthFailure.SecretIdNotFound"),
        ({"SecretId": "AKIDoff"}, "AuthFailure.SecretIdNotFound"),
        ({"SignatureMethod": "MD5"}, "InvalidParameterValue"),
        ({"Action": "AnalyzeFace"}, "InvalidParameterValue"),
        ({"Action": "DetectFace"}, "UnsupportedOperation.UnknowMethod"),
        ({"Version": "2017-01-01"}, "NoSuchVersion"),
        ({"Region": ""}, "MissingParameter"),
        ({"Mode": "2"}, "InvalidParameterValue"),
        ({"Mode": "one"}, "InvalidParameter.InvalidParameter"),
        ({"Image": "abc"}, "UnknownParameter"),
        ({"Mode": "1", "SignatureMethod": "HmacSHA1"}, "OK"),
    ],
)
def test_refusals_have_the_api_codes(change: dict[str, str], code: str) -> None:
    assert _verify(_signed(_params(**change))) == code


def test_signature_binds_host_path_and_key() -> None:
    query = _signed(_params())
    assert _verify(query) == "OK"
    assert _verify(query, host="localhost:8000") == "AuthFailure.SignatureFailure"
    assert _verify(_signed(_params(), key="another key")) == "AuthFailure.SignatureFailure"
    api_path = v1_sign_string("GET", HOST, _params(), "/")  # a signature for "/" is not one for the stream
    wrong = urlencode({**_params(), "Signature": v1_signature(SECRET_KEY, api_path, "HmacSHA256")})
    assert _verify(wrong) == "AuthFailure.SignatureFailure"
    assert _verify("") == "MissingParameter"
    assert _verify("Action=%ff") == "InvalidParameter"
