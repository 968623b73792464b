"""Each attack of issue 19, scaled down, against a real ``denseface serve`` with small limits, while a
signed call from the official Python SDK still gets its answer. Attackers connect from other loopback
addresses (127.0.0.2 …) than the SDK (127.0.0.1), as strangers on a network would. The same attacks at
full size, timed and with the server's memory: benchmarks/attack.py."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from denseface.rpc import signing
from denseface.rpc.credentials import Credential, write_keys_file
from tests import serving
from tests.conftest import METRICS_AUTH, OTHER_ID, OTHER_KEY, SECRET_ID, SECRET_KEY, LiveServer, shared
from tests.test_guards import scan_bomb

HEADER_TIMEOUT, BODY_TIMEOUT, MAX_CONNECTIONS, BURST = 1.0, 2.0, 40, 8
LIMITS = {
    "DENSEFACE_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
    "DENSEFACE_BODY_TIMEOUT": str(BODY_TIMEOUT),
    "DENSEFACE_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
    "DENSEFACE_KEEPALIVE_TIMEOUT": "1",
    "DENSEFACE_CLIENT_RATE": "0.5",
    "DENSEFACE_CLIENT_BURST": str(BURST),
    "DENSEFACE_PREAUTH_BYTES": str(2 * 1024 * 1024),
    "DENSEFACE_PREAUTH_BYTES_PER_CLIENT": str(1024 * 1024),
    "DENSEFACE_ALLOWED_HOSTS": "127.0.0.1,localhost",
}


@pytest.fixture(scope="module")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    work = tmp_path_factory.mktemp("attacks")
    keys = work / "keys.toml"
    write_keys_file(keys, [Credential(SECRET_ID, SECRET_KEY, qps=1000), Credential(OTHER_ID, OTHER_KEY)])
    live = serving.start(model_dir, work, keys, env=LIMITS)
    yield live
    serving.stop(live)
    assert "Traceback" not in live.log(), live.log()[-3000:]


def photo_b64() -> str:
    return base64.b64encode(shared("robustness", "face_recognition", "two_people.jpg").read_bytes()).decode()


def legit_call(server: LiveServer, **fields: Any) -> tuple[str, float]:
    """One signed AnalyzeDenseLandmarks from the official SDK at 127.0.0.1: its code and seconds."""
    started = time.perf_counter()
    code = serving.code_of(serving.client(server, SECRET_ID, SECRET_KEY), **fields)
    return code, time.perf_counter() - started


def connect(server: LiveServer, source: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10, source_address=(source, 0))
    sock.settimeout(10)
    return sock


def answer(sock: socket.socket, seconds: float = 5.0) -> tuple[int, dict[str, Any]]:
    """The HTTP status and JSON body of the one response on ``sock`` (it may close after it)."""
    sock.settimeout(seconds)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"closed without an answer: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(
            line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        )
    )
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split(b" ")[1]), json.loads(body)


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes ``sock`` (EOF or reset) within ``seconds``, reading what it sends."""
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def tc3_head(server: LiveServer, length: int, *, secret_key: str = "wrong-key") -> bytes:
    """A TC3 POST's head naming the test key, in its time window, but not signed with its key."""
    headers = signing.sign_tc3_request(
        SECRET_ID, secret_key, host=server.endpoint, action="AnalyzeDenseLandmarks",
        version="2020-03-03", region="ap-guangzhou", timestamp=int(time.time()), payload=b"{}",
    )  # fmt: skip
    headers["Content-Length"] = str(length)
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return f"POST / HTTP/1.1\r\n{lines}\r\n".encode()


# ------------------------------------------------------------------------------------------- attacks
def test_unsigned_uploads_are_refused_before_their_body(server: LiveServer) -> None:
    head = (
        f"POST / HTTP/1.1\r\nHost: {server.endpoint}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {6 * 1024 * 1024}\r\n\r\n"
    ).encode()
    sockets = [connect(server, "127.0.0.2") for _ in range(BURST)]
    for sock in sockets:
        sock.sendall(head + b'{"Image": "')  # a few bytes of a 6 MiB body, then silence
    for sock in sockets:  # answered at once, the body never waited for
        status, body = answer(sock)
        assert (status, body["Response"]["Error"]["Code"]) == (200, "AuthFailure.InvalidAuthorization")
    code, seconds = legit_call(server, Image=photo_b64())
    assert code == "OK"
    assert seconds < 2
    assert all(closed_within(sock, BODY_TIMEOUT + 2) for sock in sockets)  # the rest is never waited for


def test_stalled_uploads_naming_a_known_key_hold_no_slot(server: LiveServer) -> None:
    sockets = [connect(server, "127.0.0.3") for _ in range(6)]
    for sock in sockets:  # 6 × 400 KB against a 1 MiB share for this address: some wait for room
        sock.sendall(tc3_head(server, 400_000) + b'{"Image": "')
    time.sleep(0.2)
    code, seconds = legit_call(server, Image=photo_b64())  # no in-flight slot, no worker was taken
    assert code == "OK"
    assert seconds < 2
    started = time.monotonic()
    assert all(closed_within(sock, BODY_TIMEOUT + 2) for sock in sockets)  # cut at the body deadline
    assert time.monotonic() - started < BODY_TIMEOUT + 2


def test_a_bad_signature_over_a_body_is_refused_after_reading_it(server: LiveServer) -> None:
    sock = connect(server, "127.0.0.9")
    sock.sendall(tc3_head(server, 2) + b"{}")
    status, body = answer(sock)
    assert (status, body["Response"]["Error"]["Code"]) == (200, "AuthFailure.SignatureFailure")


def test_idle_connections_never_lock_out_a_signed_call(server: LiveServer) -> None:
    idle = [connect(server, "127.0.0.4") for _ in range(MAX_CONNECTIONS + 20)]  # over the cap
    code, seconds = legit_call(server, Image=photo_b64())  # the idlest connection made room
    assert code == "OK"
    assert seconds < 2
    assert all(closed_within(sock, HEADER_TIMEOUT + 2) for sock in idle)  # none held past the deadline


def test_slow_headers_are_cut_at_the_header_deadline(server: LiveServer) -> None:
    sock = connect(server, "127.0.0.5")
    started = time.monotonic()
    closed = False
    for byte in f"POST / HTTP/1.1\r\nHost: {server.endpoint}\r\nX-Slow: {'a' * 50}".encode():
        try:
            sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        time.sleep(0.1)
        if time.monotonic() - started > HEADER_TIMEOUT + 2:
            break
    assert closed or closed_within(sock, 0.5)
    assert time.monotonic() - started < HEADER_TIMEOUT + 2


@pytest.mark.parametrize("where", ["header", "request line"])
def test_oversized_headers_get_a_json_envelope(server: LiveServer, where: str) -> None:
    sock = connect(server, "127.0.0.6")
    big = "a" * (2 * 1024 * 1024)
    if where == "header":
        request = (
            f"GET /?Action=x HTTP/1.1\r\nX-TC-Language: en-US\r\nHost: {server.endpoint}\r\nX-Big: {big}"
        )
    else:
        request = f"GET /?Language=en-US&Image={big} HTTP/1.1\r\nHost: {server.endpoint}\r\n\r\n"
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # answered and closed early:
        sock.sendall(request.encode())  # the answer is still readable
    status, body = answer(sock)
    assert status == 200  # like every API answer, so the official SDKs read the code
    assert body["Response"]["Error"]["Code"] == "RequestSizeLimitExceeded"
    assert body["Response"]["Error"]["Message"].startswith("The request is too large")
    assert body["Response"]["RequestId"]


def test_malformed_http_gets_a_json_envelope(server: LiveServer) -> None:
    sock = connect(server, "127.0.0.6")
    sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
    status, body = answer(sock)
    assert status == 400
    assert body["Response"]["Error"]["Code"] == "InvalidRequest"
    assert body["Response"]["RequestId"]


def test_an_address_that_keeps_failing_is_limited_and_others_are_not(server: LiveServer) -> None:
    codes = []
    for _ in range(BURST + 4):
        sock = connect(server, "127.0.0.7")
        sock.sendall(f"POST / HTTP/1.1\r\nHost: {server.endpoint}\r\nContent-Length: 0\r\n\r\n".encode())
        codes.append(answer(sock)[1]["Response"]["Error"]["Code"])
        sock.close()
    assert codes[:BURST] == ["AuthFailure.InvalidAuthorization"] * BURST
    assert set(codes[BURST + 1 :]) == {"RequestLimitExceeded.IPLimitExceeded"}
    assert legit_call(server, Image=photo_b64())[0] == "OK"


def test_a_scan_bomb_is_answered_at_once_with_a_clear_error(server: LiveServer) -> None:
    bomb = base64.b64encode(scan_bomb((1000, 1000), 20_000)).decode()
    code, seconds = legit_call(server, Image=bomb)
    assert code == "FailedOperation.ImageDecodeFailed"
    assert seconds < 2
    assert legit_call(server, Image=photo_b64())[0] == "OK"


def test_a_replayed_v1_request_is_refused(server: LiveServer) -> None:
    fields = {
        "Action": "AnalyzeDenseLandmarks", "Version": "2018-03-01", "Timestamp": str(int(time.time())),
        "Nonce": "424242", "SecretId": SECRET_ID, "Language": "en-US", "Mode": "0",
    }  # fmt: skip
    sign_string = signing.v1_sign_string("GET", server.endpoint, fields)
    fields["Signature"] = signing.v1_signature(SECRET_KEY, sign_string)
    url = f"{server.base_url}/?{urlencode(fields)}"
    first = httpx.get(url).json()["Response"]["Error"]
    assert first["Code"] == "InvalidParameterValue.ImageEmpty"  # authenticated, then the call's own error
    again = httpx.get(url).json()["Response"]["Error"]
    assert again["Code"] == "AuthFailure.SignatureExpire"
    assert "Nonce" in again["Message"]


def test_strangers_read_nothing(server: LiveServer) -> None:
    assert httpx.get(f"{server.base_url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{server.base_url}/metrics").status_code == 401
    wrong = {"Authorization": "Bearer not-the-token-0123456789"}
    assert httpx.get(f"{server.base_url}/metrics", headers=wrong).status_code == 401
    text = httpx.get(f"{server.base_url}/metrics", headers=METRICS_AUTH).text
    assert "denseface_key_calls_total" in text
    assert "AKID" not in text  # keys are labelled by a hash
    detailed = httpx.get(f"{server.base_url}/healthz", headers=METRICS_AUTH).json()
    assert detailed["workers_alive"] == 1
    rebound = httpx.get(f"{server.base_url}/", headers={"Host": "attacker.example"})
    assert rebound.status_code == 421  # DNS rebinding: a Host not in the allow-list
    assert rebound.json()["Response"]["Error"]["Code"] == "InvalidRequest"
    assert SECRET_KEY not in server.log()
    assert OTHER_KEY not in server.log()


def test_a_removed_key_stops_working_at_sighup(server: LiveServer, tmp_path: Path) -> None:
    other = serving.client(server, OTHER_ID, OTHER_KEY)
    assert serving.code_of(other) == "InvalidParameterValue.ImageEmpty"
    keys = Path(server.log_path).parent / "keys.toml"
    write_keys_file(keys, [Credential(SECRET_ID, SECRET_KEY, qps=1000)])
    os.kill(server.process.pid, signal.SIGHUP)
    deadline = time.monotonic() + 2
    while serving.code_of(other) != "AuthFailure.SecretIdNotFound":
        assert time.monotonic() < deadline, "the removed key still works"
        time.sleep(0.05)
    assert legit_call(server, Image=photo_b64())[0] == "OK"


def test_the_banner_names_the_key_and_its_file_never_the_secret(model_dir: Path, tmp_path: Path) -> None:
    env = {**os.environ, "DENSEFACE_MODEL_DIR": str(model_dir), "DENSEFACE_CONFIG_DIR": str(tmp_path)}
    for name in ("DENSEFACE_SECRET_ID", "DENSEFACE_SECRET_KEY", "DENSEFACE_CREDENTIALS"):
        env.pop(name, None)
    process = subprocess.Popen(
        [sys.executable, "-m", "denseface", "serve", "--port", "0", "--workers", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        lines: list[str] = []
        while len(lines) < 30 and not any("SecretKey" in line for line in lines):
            lines.append(process.stdout.readline().decode())
    finally:
        process.terminate()
        process.wait(timeout=30)
    banner = "".join(lines)
    keys = (tmp_path / "credentials.toml").read_text()
    secret_key = keys.split('secret_key = "', 1)[1].split('"', 1)[0]
    secret_id = keys.split('secret_id = "', 1)[1].split('"', 1)[0]
    assert secret_id in banner
    assert str(tmp_path / "credentials.toml") in banner
    assert "0600" in banner
    assert secret_key not in banner
