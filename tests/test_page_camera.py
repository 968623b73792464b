"""The page's Camera mode against a real ``denseface serve``: headless Debian Chromium with a fake camera
playing a shared clip (``--use-file-for-fake-video-capture``, a .y4m written from ``single_face.mp4`` at
test time), frames streamed to ``/v1/stream``, the 888 points and track ids drawn live. Assertions read
the page's test hooks (``window.denseface.camera``) and its DOM; counts, not timings."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import pytest

from denseface.video import read_frames
from tests.conftest import LiveServer, shared
from tests.test_page_live import wait_for

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM = "/usr/bin/chromium"
POINTS = 888
ANSWERS = 40

pytestmark = pytest.mark.browser


def write_y4m(path: Path) -> None:
    """single_face.mp4 (640×360, 30 fps) as an uncompressed YUV4MPEG2 file, 4:2:0, as Chromium's fake
    camera reads it (and plays in a loop)."""
    frames = list(read_frames(shared("video", "single_face.mp4")))
    height, width = frames[0].rgb.shape[:2]
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n".encode("ascii"))
        for frame in frames:
            out.write(b"FRAME\n")
            out.write(cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2YUV_I420).tobytes())


@pytest.fixture(scope="module")
def camera_browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if executable is None:
        pytest.skip("Debian chromium is not installed (/usr/bin/chromium); run `make browser`")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    clip = tmp_path_factory.mktemp("camera") / "single_face.y4m"
    write_y4m(clip)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=executable,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-video-capture={clip}",
            ],
        )
        yield browser
        browser.close()


def _open(browser: Browser, server: LiveServer, secret_key: str | None = None) -> tuple[Any, list[str]]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["camera"], origin=server.base_url)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    page.goto(f"{server.base_url}/")  # the key is typed in: the page never takes one from a link
    wait_for(page, "window.denseface && document.body.dataset.state === 'idle'")
    page.fill("#sid", server.secret_id)
    page.fill("#skey", secret_key if secret_key is not None else server.secret_key)
    page.click("#tab-camera")
    return page, problems


def test_camera_streams_and_draws_landmarks(
    camera_browser: Browser, live_server: LiveServer, tmp_path: Path
) -> None:
    page, problems = _open(camera_browser, live_server)
    try:
        page.click("#camera-start")
        wait_for(page, f"window.denseface.camera.answered >= {ANSWERS}", 120.0)
        page.click("#camera-stop")
        camera = page.evaluate("window.denseface.camera")
        stats = page.inner_text("#camera-stats")
        page.screenshot(path=str(tmp_path / "camera.png"))
        canvas_visible = page.is_visible("#camera-canvas")
        state = page.evaluate("window.denseface.camera.state")
    finally:
        page.context.close()
    assert camera["frameErrors"] == 0
    # every answered frame of the talking man has his face, drawn with all its points
    assert camera["framesWithPoints"] == camera["answered"]
    assert camera["faces"] == 1
    assert camera["pointsDrawn"] == POINTS
    assert 1 <= len(camera["trackIds"]) <= 3
    assert camera["fps"] > 0
    assert camera["latencyMs"] is not None
    assert "frames/s" in stats
    assert "ms latency" in stats
    assert canvas_visible
    assert state == "stopped"
    assert not problems


def test_camera_with_a_wrong_key_says_why(camera_browser: Browser, live_server: LiveServer) -> None:
    page, problems = _open(camera_browser, live_server, secret_key="not the key")
    try:
        page.click("#camera-start")
        wait_for(
            page, "window.denseface.camera.error !== null && window.denseface.camera.error !== undefined"
        )
        error = page.evaluate("window.denseface.camera.error")
        shown = page.inner_text("#camera-error")
        wait_for(page, "window.denseface.camera.state === 'stopped'")
        answered = page.evaluate("window.denseface.camera.answered")
    finally:
        page.context.close()
    assert error["code"] == "AuthFailure.SignatureFailure"
    assert "AuthFailure.SignatureFailure" in shown
    assert answered == 0
    assert not problems


@pytest.mark.parametrize("backend", ["webcrypto", "fallback"])
def test_page_signs_the_stream_as_the_library(
    camera_browser: Browser, live_server: LiveServer, backend: str
) -> None:
    """The page's ``signStreamQuery`` (WebCrypto, and the bundled SHA-256 used outside secure contexts)
    gives the library's signature for the same parameters, with a key and region needing URL-encoding."""
    from urllib.parse import parse_qsl

    from denseface.rpc.stream import stream_query

    key, region = "k+/= ü&key", "ap guangzhou&x=1"
    page, problems = _open(camera_browser, live_server)
    try:
        query = page.evaluate(
            """async ([key, region, backend]) => (await import("/static/tc3.js")).signStreamQuery({
                 secretId: "AKIDx", secretKey: key, host: "127.0.0.1:8000", mode: 1, region,
                 timestamp: 1700000000, nonce: 42, backend })""",
            [key, region, backend],
        )
    finally:
        page.context.close()
    expected = stream_query(
        "AKIDx", key, host="127.0.0.1:8000", mode=1, region=region, timestamp=1700000000, nonce=42
    )
    assert dict(parse_qsl(query)) == dict(parse_qsl(expected))
    assert not problems
