"""The page's in-browser TC3-HMAC-SHA256 signer agrees with Python, on both crypto back ends.

The page (denseface/server/static/) signs requests in the browser: with WebCrypto in a secure
context (https, localhost, 127.0.0.1) and with its bundled pure-JS SHA-256/HMAC elsewhere. These
tests load the real page in headless Chromium from a tiny static server and compare
``window.denseface.signTc3`` with a hand computation per docs/tencent-protocol.md that is itself
checked against the official SDK's ``Sign.sign_tc3``. Two end-to-end checks then let the page sign
a real request, once over 127.0.0.1 (WebCrypto) and once over a non-secure origin (fallback),
and verify it server-side.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import shutil
import threading
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import REGION_COUNTS

STATIC = Path(__file__).resolve().parents[1] / "denseface" / "server" / "static"
CHROMIUM = "/usr/bin/chromium"
INSECURE_HOST = "denseface.test"  # mapped to 127.0.0.1 inside Chromium: not a secure context
SECRET_ID = "AKIDpagetest"
SECRET_KEY = "pa+ge/test=secret-üñí"  # "+" must survive the URL fragment unchanged


# Test vector A of docs/tencent-protocol.md (Tencent's signature v3 documentation).
VECTOR_A = {
    "secretId": "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE",
    "secretKey": "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
    "timestamp": 1551113065,
    "host": "cvm.tencentcloudapi.com",
    "service": "cvm",
    "contentType": "application/json; charset=utf-8",
    "payload": '{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}',
}
VECTOR_A_SIGNATURE = "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"

CASES = [
    VECTOR_A,
    {  # what the page really sends: compact JSON, a Host with a port, service iai
        "secretId": SECRET_ID,
        "secretKey": SECRET_KEY,
        "timestamp": 1767225599,  # 2025-12-31T23:59:59Z: the credential date is the UTC date
        "host": "127.0.0.1:8000",
        "service": "iai",
        "contentType": "application/json",
        "payload": json.dumps(
            {"Image": base64.b64encode(bytes(range(256)) * 40).decode(), "Mode": 0},
            separators=(",", ":"),
        ),
    },
    {  # non-ASCII body bytes (UTF-8), a LAN host name, several SHA-256 blocks
        "secretId": "AKID" + "x" * 32,
        "secretKey": "k" * 100,  # longer than one HMAC block
        "timestamp": 1700000000,
        "host": "face-box.lan:8080",
        "service": "iai",
        "contentType": "application/json",
        "payload": json.dumps(
            {"Url": "http://例え.jp/顔.jpg", "FaceModelVersion": "3.0"}, ensure_ascii=False
        ),
    },
]


def python_tc3(
    *,
    secretId: str,
    secretKey: str,
    timestamp: int,
    host: str,
    payload: str | bytes,
    service: str = "iai",
    contentType: str = "application/json",
    signedHeaders: str = "content-type;host",
) -> dict[str, str]:
    """TC3-HMAC-SHA256 computed by hand, following docs/tencent-protocol.md section 2."""
    body = payload.encode() if isinstance(payload, str) else payload
    date = datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d")
    values = {"content-type": contentType, "host": host}
    names = signedHeaders.split(";")
    canonical_headers = "".join(f"{n}:{values[n].strip().lower()}\n" for n in names)
    canonical = "\n".join(
        ["POST", "/", "", canonical_headers, signedHeaders, hashlib.sha256(body).hexdigest()]
    )
    scope = f"{date}/{service}/tc3_request"
    string_to_sign = "\n".join(
        ["TC3-HMAC-SHA256", str(timestamp), scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )

    def mac(key: bytes, msg: str) -> bytes:
        return hmac.new(key, msg.encode(), hashlib.sha256).digest()

    key = mac(mac(mac(("TC3" + secretKey).encode(), date), service), "tc3_request")
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    try:  # cross-check the hand computation with the official SDK when it is installed
        from tencentcloud.common.sign import Sign
    except ImportError:
        pass
    else:
        assert Sign.sign_tc3(secretKey, date, service, string_to_sign) == signature
    return {"signature": signature, "canonicalRequest": canonical, "stringToSign": string_to_sign}


def canned_face(width: int, height: int) -> dict[str, object]:
    """A syntactically valid DenseFaceShape: 888 points spread over the image."""
    face: dict[str, object] = {"X": 10, "Y": 10, "Width": width - 20, "Height": height - 20}
    for row, (name, count) in enumerate(REGION_COUNTS.items()):
        y = 12 + row * (height - 24) // len(REGION_COUNTS)
        face[name] = [{"X": 12 + i * (width - 24) // count, "Y": y} for i in range(count)]
    return face


class _Handler(BaseHTTPRequestHandler):
    verified: list[bool]

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, body: bytes, content_type: str, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        name = "index.html" if path == "/" else path.removeprefix("/static/")
        file = STATIC / name
        if "/" in name or not file.is_file():
            self._send(b"not found", "text/plain", 404)
            return
        types = {".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css"}
        self._send(file.read_bytes(), types.get(file.suffix, "application/octet-stream"))

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        auth = self.headers["Authorization"]
        fields = dict(part.strip().split("=", 1) for part in auth.split(" ", 1)[1].split(","))
        secret_id = fields["Credential"].split("/")[0]
        expected = python_tc3(
            secretId=secret_id,
            secretKey=SECRET_KEY,
            timestamp=int(self.headers["X-TC-Timestamp"]),
            host=self.headers["Host"],
            payload=body,
            contentType=self.headers["Content-Type"],
            signedHeaders=fields["SignedHeaders"],
        )
        ok = (
            secret_id == SECRET_ID
            and fields["Signature"] == expected["signature"]
            and self.headers["Content-Type"] == "application/json"
            and self.headers["X-TC-Action"] == "AnalyzeDenseLandmarks"
            and self.headers["X-TC-Version"] == "2020-03-03"
        )
        ok = ok and base64.b64decode(json.loads(body)["Image"]).startswith(b"\x89PNG")
        self.verified.append(ok)
        if ok:
            response = {
                "ImageWidth": 64,
                "ImageHeight": 64,
                "DenseFaceShapeSet": [canned_face(64, 64)],
                "FaceModelVersion": "3.0",
            }
        else:
            response = {"Error": {"Code": "AuthFailure.SignatureFailure", "Message": "bad signature"}}
        response["RequestId"] = str(uuid.uuid4())
        self._send(json.dumps({"Response": response}).encode(), "application/json")


@pytest.fixture(scope="module")
def server():
    verified: list[bool] = []
    handler = type("Handler", (_Handler,), {"verified": verified})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1], verified
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("Debian chromium is not installed (/usr/bin/chromium); run `make browser`")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                f"--host-resolver-rules=MAP {INSECURE_HOST} 127.0.0.1",
            ],
        )
        yield browser
        browser.close()


def open_page(browser, url: str):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_function("window.denseface && typeof window.denseface.signTc3 === 'function'")
    assert errors == []
    return page


@pytest.fixture(scope="module")
def secure_page(browser, server):
    page = open_page(browser, f"http://127.0.0.1:{server[0]}/")
    yield page
    page.close()


@pytest.fixture(scope="module")
def insecure_page(browser, server):
    page = open_page(browser, f"http://{INSECURE_HOST}:{server[0]}/")
    yield page
    page.close()


def test_python_reference_matches_doc_vector() -> None:
    assert python_tc3(**VECTOR_A)["signature"] == VECTOR_A_SIGNATURE


@pytest.mark.browser
@pytest.mark.parametrize("backend", ["webcrypto", "fallback"])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_js_signature_equals_python(secure_page, backend: str, case: int) -> None:
    inputs = CASES[case]
    got = secure_page.evaluate("(o) => window.denseface.signTc3(o)", {**inputs, "backend": backend})
    want = python_tc3(**inputs)
    assert got["backend"] == backend
    assert got["canonicalRequest"] == want["canonicalRequest"]
    assert got["stringToSign"] == want["stringToSign"]
    assert got["signature"] == want["signature"]
    date = datetime.fromtimestamp(inputs["timestamp"], tz=timezone.utc).strftime("%Y-%m-%d")
    assert got["authorization"] == (
        f"TC3-HMAC-SHA256 Credential={inputs['secretId']}/{date}/{inputs['service']}/tc3_request, "
        f"SignedHeaders=content-type;host, Signature={want['signature']}"
    )


@pytest.mark.browser
def test_fallback_sha256_equals_hashlib_and_webcrypto(secure_page) -> None:
    # Lengths around the 55/56/64-byte padding boundaries, plus a multi-block message.
    lengths = [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000, 100_003]
    got = secure_page.evaluate(
        """async (lengths) => {
            const out = [];
            for (const n of lengths) {
                const bytes = Uint8Array.from({length: n}, (_, i) => (i * 31 + 7) % 256);
                out.push([await denseface.sha256Hex(bytes, "fallback"),
                          await denseface.sha256Hex(bytes, "webcrypto")]);
            }
            return out;
        }""",
        lengths,
    )
    for n, (fallback, webcrypto) in zip(lengths, got, strict=True):
        want = hashlib.sha256(bytes((i * 31 + 7) % 256 for i in range(n))).hexdigest()
        assert fallback == want, n
        assert webcrypto == want, n


@pytest.mark.browser
def test_insecure_context_falls_back_and_still_signs_equal(insecure_page) -> None:
    state = insecure_page.evaluate("({secure: isSecureContext, webCrypto: denseface.webCrypto})")
    assert state == {"secure": False, "webCrypto": False}
    assert insecure_page.is_visible("#context-note")  # tells the user to prefer localhost or HTTPS
    for inputs in CASES:
        got = insecure_page.evaluate("(o) => window.denseface.signTc3(o)", inputs)  # automatic choice
        assert got["backend"] == "fallback"
        assert got["signature"] == python_tc3(**inputs)["signature"]


def _png(tmp_path: Path) -> Path:
    pil = pytest.importorskip("PIL.Image")
    path = tmp_path / "face.png"
    buffer = io.BytesIO()
    pil.new("RGB", (64, 64), (180, 140, 120)).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())
    return path


@pytest.mark.browser
@pytest.mark.parametrize("host", ["127.0.0.1", INSECURE_HOST])
def test_page_request_verifies_server_side(browser, server, tmp_path: Path, host: str) -> None:
    port, verified = server
    page = browser.new_page()
    try:
        page.goto(f"http://{host}:{port}/")
        page.wait_for_function("window.denseface && document.body.dataset.state === 'idle'")
        page.fill("#sid", SECRET_ID)  # typed (or pasted) by the user: kept in this tab's sessionStorage
        page.fill("#skey", SECRET_KEY)
        assert page.evaluate("sessionStorage.getItem('denseface.secretId')") == SECRET_ID
        # a crafted link does not replace the key the page holds
        page.goto(f"http://{host}:{port}/#sid=AKIDattacker&skey=attacker")
        page.reload()
        page.wait_for_function("window.denseface && document.body.dataset.state === 'idle'")
        assert page.input_value("#sid") == SECRET_ID
        assert page.input_value("#skey") == SECRET_KEY
        before = len(verified)
        page.set_input_files("#file", str(_png(tmp_path)))  # analysis starts on its own
        page.wait_for_function("['done', 'error'].includes(document.body.dataset.state)", timeout=10_000)
        hooks = page.evaluate("({...window.denseface, signTc3: null, sha256Hex: null})")
        assert hooks["error"] is None, hooks["error"]
        assert verified[before:] == [True]
        assert hooks["state"] == "done"
        assert hooks["faces"] == 1
        assert hooks["pointsDrawn"] == 888
        assert page.evaluate("window.denseface.webCrypto") is (host == "127.0.0.1")
        page.click("#legend button[data-region=Chin]")
        assert page.evaluate("window.denseface.pointsDrawn") == 888 - 160
        assert page.evaluate("window.denseface.hiddenRegions") == ["Chin"]
        assert page.get_attribute("#legend button[data-region=Chin]", "aria-pressed") == "false"
        page.screenshot(path=str(tmp_path / f"page-{host}.png"))
    finally:
        page.close()
