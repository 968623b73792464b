"""``denseface.rpc.fetch``: URL checks, address policy, and downloads from a real HTTP server on 127.0.0.1.

Only loopback is ever contacted. Refusals of other addresses are asserted with the HTTP client patched to fail
if it is used at all, so a regression cannot send traffic anywhere.
"""

from __future__ import annotations

import contextlib
import gzip
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from denseface.errors import ImageDownloadError, ImageSizeExceedError, UrlIllegalError
from denseface.rpc.fetch import UrlFetcher, parse_networks
from denseface.rpc.image_input import ImageLimits, check_tencent_image

DATASETS = Path(__file__).parents[1] / ".." / "shared" / "datasets"
PHOTO = (DATASETS / "robustness" / "face_recognition" / "obama-480p.jpg").read_bytes()
LOOPBACK = parse_networks(["127.0.0.1/32"])


@dataclass
class Server:
    port: int
    stop: threading.Event
    requests: list[tuple[str, str]] = field(default_factory=list)  # (path, Host header)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", headers: Sequence[tuple[str, str]] = ()) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        state = self.server.state
        state.requests.append((self.path, self.headers.get("Host", "")))
        path, _, query = self.path.partition("?")
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._route(path, query, state)

    def _route(self, path: str, query: str, state: Server) -> None:
        if path == "/image.jpg":
            self._send(200, PHOTO, [("Content-Type", "image/jpeg")])
        elif path.startswith("/r/"):  # /r/N redirects N times, then lands on the image
            remaining = int(path[3:])
            target = "/image.jpg" if remaining <= 1 else f"/r/{remaining - 1}"
            self._send(302, headers=[("Location", target)])
        elif path == "/relative":
            self._send(301, headers=[("Location", "image.jpg")])
        elif path == "/to":  # redirect to whatever ?target says
            self._send(302, headers=[("Location", query)])
        elif path == "/no-location":
            self._send(302)
        elif path == "/missing":
            self._send(404, b"not found")
        elif path == "/error":
            self._send(500, b"boom")
        elif path == "/host":
            self._send(200, self.headers.get("Host", "").encode())
        elif path == "/gzip":
            self._send(200, gzip.compress(PHOTO), [("Content-Encoding", "gzip")])
        elif path == "/gzip-bomb":
            self._send(200, gzip.compress(bytes(20 * 1024 * 1024)), [("Content-Encoding", "gzip")])
        elif path == "/brotli":
            self._send(200, b"\x00" * 10, [("Content-Encoding", "br")])
        elif path == "/declared-huge":
            self.send_response(200)
            self.send_header("Content-Length", str(50 * 1024 * 1024))
            self.end_headers()
            self.wfile.write(b"\x00" * 1024)
        elif path == "/endless":  # no Content-Length, never ends
            self.send_response(200)
            self.end_headers()
            chunk = b"\xff" * 65536
            while not state.stop.is_set():
                self.wfile.write(chunk)
        elif path == "/slow":  # headers only after a long pause
            state.stop.wait(30)
        elif path == "/drip":  # one byte every 0.1 s: never idle long enough for a read timeout
            self.send_response(200)
            self.end_headers()
            while not state.stop.wait(0.1):
                self.wfile.write(b"\xff")
                self.wfile.flush()
        else:
            self._send(404)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    state: Server


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.state = Server(port=httpd.server_address[1], stop=threading.Event())
    thread = threading.Thread(target=httpd.serve_forever, name="test-image-server", daemon=True)
    thread.start()
    try:
        yield httpd.state
    finally:
        httpd.state.stop.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def no_http(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any use of the HTTP client fail the test: proves a refusal happened before any traffic."""

    async def refuse(*args: object, **kwargs: object) -> httpx.Response:
        raise AssertionError("the fetcher tried to send a request")

    monkeypatch.setattr(httpx.AsyncClient, "send", refuse)


def fetcher(**kwargs: Any) -> UrlFetcher:
    kwargs.setdefault("allow_networks", LOOPBACK)
    return UrlFetcher(**kwargs)


def fixed_resolver(table: dict[str, list[str]], calls: list[str] | None = None) -> Any:
    async def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        if host not in table:
            raise OSError(f"unknown host {host}")
        return table[host]

    return resolve


# --- refusals without traffic -----------------------------------------------------------------------------


@pytest.mark.usefixtures("no_http")
@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "10.0.0.1", "169.254.169.254", "[::1]", "0.0.0.0", "[::ffff:127.0.0.1]"],
)
def test_internal_hosts_are_refused_without_traffic(server: Server, host: str) -> None:
    before = len(server.requests)
    with pytest.raises(ImageDownloadError, match="refused") as info:
        UrlFetcher().fetch_sync(server.url("/image.jpg", host))
    assert info.value.code == "FailedOperation.ImageDownloadError"
    assert len(server.requests) == before


@pytest.mark.usefixtures("no_http")
@pytest.mark.parametrize("url", ["ftp://127.0.0.1/image.jpg", "file:///etc/passwd"])
def test_other_schemes_are_refused_without_traffic(url: str) -> None:
    with pytest.raises(UrlIllegalError):
        UrlFetcher().fetch_sync(url)


@pytest.mark.usefixtures("no_http")
def test_name_resolving_to_any_internal_address_is_refused() -> None:
    calls: list[str] = []
    resolve = fixed_resolver({"mixed.test": ["93.184.216.34", "10.1.2.3"]}, calls)
    with pytest.raises(ImageDownloadError, match="private"):
        UrlFetcher(resolver=resolve).fetch_sync("https://mixed.test/a.jpg")
    assert calls == ["mixed.test"]


def test_unresolvable_name_is_a_download_error() -> None:
    with pytest.raises(ImageDownloadError, match="could not be resolved"):
        UrlFetcher(resolver=fixed_resolver({})).fetch_sync("http://nowhere.test/a.jpg")


# --- downloads from the local server ----------------------------------------------------------------------


def test_fetch_image(server: Server) -> None:
    data = fetcher().fetch_sync(server.url("/image.jpg"))
    assert data == PHOTO
    assert check_tencent_image(data).format == "JPEG"


@pytest.mark.anyio
async def test_fetch_is_awaitable(server: Server) -> None:
    assert await fetcher().fetch(server.url("/image.jpg")) == PHOTO


def test_connects_to_the_validated_address_and_keeps_the_host_header(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The name resolves once to loopback; any later lookup would say 10.0.0.1 (a rebinding attack), and the
    # system resolver refuses the name (httpx resolving by itself, without sending a DNS query). Success with
    # one lookup shows the connection went to the checked address.
    real_getaddrinfo = socket.getaddrinfo

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host in ("images.test", b"images.test"):
            raise AssertionError("the system resolver was asked for the name")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    answers = iter([["127.0.0.1"]])
    calls: list[str] = []

    async def rebinding(host: str, port: int) -> list[str]:
        calls.append(host)
        return next(answers, ["10.0.0.1"])

    body = fetcher(resolver=rebinding).fetch_sync(server.url("/host", "images.test"))
    assert body == f"images.test:{server.port}".encode()
    assert calls == ["images.test"]


def test_follows_three_redirects(server: Server) -> None:
    start = len(server.requests)
    assert fetcher().fetch_sync(server.url("/r/3")) == PHOTO
    assert server.paths()[start:] == ["/r/3", "/r/2", "/r/1", "/image.jpg"]


def test_relative_redirect(server: Server) -> None:
    assert fetcher().fetch_sync(server.url("/relative")) == PHOTO


def test_more_than_three_redirects_fail(server: Server) -> None:
    start = len(server.requests)
    with pytest.raises(ImageDownloadError, match="more than 3 redirects"):
        fetcher().fetch_sync(server.url("/r/4"))
    assert "/image.jpg" not in server.paths()[start:]


def test_every_redirect_hop_is_resolved_and_checked(server: Server) -> None:
    calls: list[str] = []
    resolve = fixed_resolver({"a.test": ["127.0.0.1"], "b.test": ["127.0.0.1"]}, calls)
    target = server.url("/image.jpg", "b.test")
    assert fetcher(resolver=resolve).fetch_sync(server.url(f"/to?{target}", "a.test")) == PHOTO
    assert calls == ["a.test", "b.test"]


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/a.jpg",
        "http://[::1]/a.jpg",
        "http://0.0.0.0/a.jpg",
        "http://127.0.0.2:{port}/image.jpg",  # loopback, but outside the 127.0.0.1/32 allow-list
    ],
)
def test_redirect_to_a_forbidden_address_is_refused(server: Server, target: str) -> None:
    start = len(server.requests)
    with pytest.raises(ImageDownloadError, match="refused"):
        fetcher().fetch_sync(server.url("/to?" + target.format(port=server.port)))
    assert server.paths()[start:] == ["/to?" + target.format(port=server.port)]


@pytest.mark.parametrize(
    "target",
    [
        "ftp://127.0.0.1/a.jpg",
        "file:///etc/passwd",
        "http://u:p@127.0.0.1/",
        "http://2130706433/",
    ],
)
def test_redirect_to_an_illegal_url_is_a_download_error(server: Server, target: str) -> None:
    with pytest.raises(ImageDownloadError, match="redirected to a URL that is not allowed"):
        fetcher().fetch_sync(server.url("/to?" + target))


def test_redirect_to_an_unparsable_location_is_a_download_error(server: Server) -> None:
    # httpx itself rejects this Location while reading the response; it is still a download error.
    with pytest.raises(ImageDownloadError):
        fetcher().fetch_sync(server.url("/to?http://[::1"))


def test_redirect_without_location(server: Server) -> None:
    with pytest.raises(ImageDownloadError, match="without Location"):
        fetcher().fetch_sync(server.url("/no-location"))


@pytest.mark.parametrize(("path", "status"), [("/missing", 404), ("/error", 500)])
def test_http_errors(server: Server, path: str, status: int) -> None:
    with pytest.raises(ImageDownloadError, match=f"HTTP {status}"):
        fetcher().fetch_sync(server.url(path + "?token=SECRET"))


def test_messages_never_contain_the_query(server: Server) -> None:
    with pytest.raises(ImageDownloadError) as info:
        fetcher().fetch_sync(server.url("/missing?token=SECRET"))
    assert "SECRET" not in info.value.message


def test_endless_stream_is_capped(server: Server) -> None:
    began = time.monotonic()
    with pytest.raises(ImageSizeExceedError) as info:
        fetcher().fetch_sync(server.url("/endless"))
    assert info.value.code == "FailedOperation.ImageSizeExceed"
    assert time.monotonic() - began < 5


def test_small_cap(server: Server) -> None:
    with pytest.raises(ImageSizeExceedError):
        fetcher(limits=ImageLimits(max_download=len(PHOTO) - 1)).fetch_sync(server.url("/image.jpg"))
    assert fetcher(limits=ImageLimits(max_download=len(PHOTO))).fetch_sync(server.url("/image.jpg")) == PHOTO


def test_declared_oversize_is_refused_before_reading(server: Server) -> None:
    with pytest.raises(ImageSizeExceedError, match="52428800 bytes"):
        fetcher().fetch_sync(server.url("/declared-huge"))


def test_gzip_body_is_inflated(server: Server) -> None:
    assert fetcher().fetch_sync(server.url("/gzip")) == PHOTO


def test_gzip_bomb_is_capped(server: Server) -> None:
    with pytest.raises(ImageSizeExceedError, match="inflates"):
        fetcher().fetch_sync(server.url("/gzip-bomb"))


def test_unknown_content_coding(server: Server) -> None:
    with pytest.raises(ImageDownloadError, match="content coding"):
        fetcher().fetch_sync(server.url("/brotli"))


def test_slow_server_times_out(server: Server) -> None:
    began = time.monotonic()
    with pytest.raises(ImageDownloadError, match="took longer than 1 s"):
        fetcher(deadline=1.0).fetch_sync(server.url("/slow"))
    assert time.monotonic() - began < 3


def test_dripping_server_hits_the_total_deadline(server: Server) -> None:
    began = time.monotonic()
    with pytest.raises(ImageDownloadError, match="took longer than"):
        fetcher(deadline=1.0).fetch_sync(server.url("/drip"))
    assert time.monotonic() - began < 3


def _closed_port() -> int:
    """A port that was just free on 127.0.0.1: nothing listens there."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_connection_refused() -> None:
    with pytest.raises(ImageDownloadError, match="could not connect"):
        fetcher().fetch_sync(f"http://127.0.0.1:{_closed_port()}/image.jpg")


def test_environment_proxies_are_ignored(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    # The "proxy" is a closed loopback port: were it used, the download would fail.
    proxy = f"http://127.0.0.1:{_closed_port()}"
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert fetcher().fetch_sync(server.url("/image.jpg")) == PHOTO


def test_fetcher_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="positive"):
        UrlFetcher(deadline=0)
    with pytest.raises(ValueError, match="max_redirects"):
        UrlFetcher(max_redirects=-1)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
