"""The page against a real ``denseface serve``: photos in, 888 points per face drawn, errors in plain words.

Headless Debian Chromium driven by Playwright loads ``GET /`` from the session's ``live_server`` (real
models, real signing check, real Url downloads from 127.0.0.1), with its Content-Security-Policy in
force; the test types the key into the page (it never takes one from a link). Assertions read the
page's test hooks (``window.denseface``, ``<body data-state>``) and its DOM, and check the overlay's
pixels: the canvas (and the exported PNG) has each region's color at the coordinates the server
returned. Screenshots go to each test's ``tmp_path``.

docs/img/page.png is made by this file:
``DENSEFACE_README_SCREENSHOT=docs/img/page.png pytest tests/test_page_live.py -k two_faces``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import REGION_COUNTS, SHAPE90, LiveServer, shared

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = "/usr/bin/chromium"
POINTS = 888
CHIN = 160
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def two_people() -> Path:
    return shared("robustness", "face_recognition", "two_people.jpg")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if executable is None:
        pytest.skip("Debian chromium is not installed (/usr/bin/chromium); run `make browser`")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


class PageProblems:
    """Uncaught page errors and failed page requests, collected while a test runs."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on(
            "console",
            lambda m: self.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None,
        )
        page.on("requestfailed", lambda r: self.errors.append(f"requestfailed: {r.url} {r.failure}"))


@pytest.fixture
def page_factory(browser: Browser, live_server: LiveServer) -> Iterator[Any]:
    """Open the page in a fresh context (own sessionStorage) and type the test key into it."""
    opened: list[tuple[Any, PageProblems]] = []

    def open_page(viewport: dict[str, int] = DESKTOP) -> tuple[Page, PageProblems]:
        context = browser.new_context(viewport=viewport, accept_downloads=True)
        page = context.new_page()
        problems = PageProblems(page)
        opened.append((context, problems))
        page.goto(f"{live_server.base_url}/")
        wait_for(page, "window.denseface && document.body.dataset.state === 'idle'")
        page.fill("#sid", live_server.secret_id)
        page.fill("#skey", live_server.secret_key)
        assert page.input_value("#sid") == live_server.secret_id
        return page, problems

    yield open_page
    for context, _ in opened:
        context.close()


def analyze_file(page: Page, path: Path, *, mode: str = "0", rotate: bool = False) -> dict[str, Any]:
    """Set the options, choose the file (analysis starts on its own), wait, and return the hooks."""
    page.select_option("#mode", mode)
    page.set_checked("#rotate", rotate)
    mark_pending(page)
    page.set_input_files("#file", str(path))
    return wait_result(page)


def wait_for(page: Page, expression: str, seconds: float = 30.0) -> None:
    """Poll ``expression`` until it is truthy. (Playwright's ``wait_for_function`` evaluates its
    predicate with ``eval`` inside the page, which the page's Content-Security-Policy forbids, and
    the page is tested with its policy in force.)"""
    deadline = time.monotonic() + seconds
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {seconds:g} s: {expression}")
        page.wait_for_timeout(50)


def mark_pending(page: Page) -> None:
    """Forget any earlier outcome, so that waiting for done/error waits for the next request."""
    page.evaluate("document.body.dataset.state = 'test-pending'")


def wait_result(page: Page) -> dict[str, Any]:
    wait_for(page, "['done', 'error'].includes(document.body.dataset.state)", 15.0)
    return hooks(page)


def hooks(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(
        "({state: denseface.state, pointsDrawn: denseface.pointsDrawn, faces: denseface.faces,"
        " error: denseface.error, hiddenRegions: denseface.hiddenRegions, timingMs: denseface.timingMs})"
    )
    return result


def response_json(page: Page) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(page.text_content("#json") or "")
    return data["Response"]


def assert_faces(response: dict[str, Any], faces: int) -> None:
    shapes = response["DenseFaceShapeSet"]
    assert len(shapes) == faces
    for shape in shapes:
        assert {name: len(shape[name]) for name in REGION_COUNTS} == REGION_COUNTS


FOREHEAD_TOP = 72  # Forehead points 0-71 run over the top; 72-119 lie along the brows, drawn on top


def region_on_canvas(
    page: Page, region: str, count: int | None = None, action: str = "AnalyzeDenseLandmarks"
) -> float:
    """Share of the region's points (from the raw JSON; the first ``count`` if given) whose canvas
    pixel has the region's color (in the faces of ``action``'s response).

    Reads the on-screen canvas at each point scaled by canvas pixels per image pixel, so this checks
    that the overlay is drawn where the server said, at the display scale.
    """
    share: float = page.evaluate(
        """async ([name, count, actionName]) => {
            const { ACTIONS } = await import("/static/regions.js");
            const action = ACTIONS[actionName];
            const color = action.regions.find((r) => r.name === name).color;
            const want = [1, 3, 5].map((i) => parseInt(color.slice(i, i + 2), 16));
            const response = JSON.parse(document.getElementById("json").textContent).Response;
            const canvas = document.getElementById("canvas");
            const ctx = canvas.getContext("2d");
            const scale = canvas.width / response.ImageWidth;
            let hits = 0, total = 0;
            for (const face of response[action.setField]) {
                for (const p of face[name].slice(0, count ?? undefined)) {
                    const x = Math.floor(p.X * scale), y = Math.floor(p.Y * scale);
                    const got = ctx.getImageData(x, y, 1, 1).data;
                    total += 1;
                    if (want.every((v, i) => Math.abs(v - got[i]) <= 40)) hits += 1;
                }
            }
            return hits / total;
        }""",
        [region, count, action],
    )
    return share


def region_in_png(page: Page, png: Path, response: dict[str, Any], region: str) -> float:
    """Share of the region's points whose pixel in an exported full-size PNG has the region's color."""
    pil = pytest.importorskip("PIL.Image")
    color: str = page.evaluate(
        "async (n) => (await import('/static/regions.js')).REGIONS.find((r) => r.name === n).color", region
    )
    want = [int(color[i : i + 2], 16) for i in (1, 3, 5)]
    with pil.open(png) as image:
        rgb = image.convert("RGB")
        points = [p for face in response["DenseFaceShapeSet"] for p in face[region]]
        hits = sum(
            all(abs(a - b) <= 40 for a, b in zip(rgb.getpixel((p["X"], p["Y"])), want, strict=True))
            for p in points
        )
    return hits / len(points)


def assert_error(page: Page, code: str, plain: str) -> None:
    state = hooks(page)
    assert state["state"] == "error"
    assert state["error"]["code"] == code
    assert state["faces"] == 0
    assert page.is_visible("#error")
    assert page.text_content("#error .code") == code
    assert page.text_content("#error .plain") == plain
    request_id = response_json(page)["RequestId"]
    assert f"RequestId {request_id}" in (page.text_content("#error") or "")


@pytest.mark.browser
def test_two_faces_drawn_toggled_and_downloaded(page_factory: Any, tmp_path: Path) -> None:
    page, problems = page_factory(DESKTOP)
    state = analyze_file(page, two_people())
    page.screenshot(path=str(tmp_path / "two-faces.png"))
    assert state["error"] is None, state["error"]
    assert state["state"] == "done"
    assert state["faces"] == 2
    assert state["pointsDrawn"] == 2 * POINTS
    assert page.text_content("#status") == f"2 faces, {2 * POINTS} points."
    response = response_json(page)
    assert_faces(response, 2)
    assert (response["ImageWidth"], response["ImageHeight"]) == (1126, 661)
    # The canvas shows the photo at its aspect ratio, inside the stage.
    box = page.locator("#canvas").bounding_box()
    assert box is not None
    assert box["width"] / box["height"] == pytest.approx(1126 / 661, rel=0.01)

    # The overlay sits where the server's coordinates are: the pixels under the Chin points are Chin-colored.
    assert region_on_canvas(page, "Chin") > 0.9
    assert region_on_canvas(page, "Forehead", FOREHEAD_TOP) > 0.9

    chin = page.locator("#legend button[data-region=Chin]")
    assert chin.get_attribute("aria-pressed") == "true"
    chin.click()
    assert hooks(page)["pointsDrawn"] == 2 * (POINTS - CHIN)
    assert hooks(page)["hiddenRegions"] == ["Chin"]
    assert chin.get_attribute("aria-pressed") == "false"
    assert region_on_canvas(page, "Chin") < 0.2
    assert region_on_canvas(page, "Forehead", FOREHEAD_TOP) > 0.9
    page.screenshot(path=str(tmp_path / "two-faces-no-chin.png"))
    chin.press("Enter")  # keyboard works too
    assert hooks(page)["pointsDrawn"] == 2 * POINTS
    assert hooks(page)["hiddenRegions"] == []
    assert chin.get_attribute("aria-pressed") == "true"

    # Hovering a point names its face, region and index.
    point = response["DenseFaceShapeSet"][0]["Chin"][40]
    per_image_pixel = box["width"] / response["ImageWidth"]
    page.mouse.move(box["x"] + point["X"] * per_image_pixel, box["y"] + point["Y"] * per_image_pixel)
    tooltip = page.locator("#tooltip")
    tooltip.wait_for(state="visible")
    assert tooltip.text_content() == f"Face 1 · Chin #40  ({point['X']}, {point['Y']})"
    if readme_png := os.environ.get("DENSEFACE_README_SCREENSHOT"):  # how docs/img/page.png is made
        page.evaluate("document.activeElement.blur()")
        page.screenshot(path=readme_png)
    page.mouse.move(0, 0)
    tooltip.wait_for(state="hidden")

    # Raw JSON panel (collapsed until opened) carries the RequestId; timing is shown.
    page.click("#json-details summary")
    assert page.is_visible("#json")
    assert re.fullmatch(r"[0-9a-f-]{36}", response["RequestId"])
    assert response["RequestId"] in (page.text_content("#json") or "")
    assert isinstance(state["timingMs"], int)
    assert state["timingMs"] > 0
    assert page.text_content("#timing") == f"{state['timingMs']} ms"

    with page.expect_download() as info:
        page.click("#download")
    download = info.value
    assert download.suggested_filename == "two_people-denseface.png"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    data = saved.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    # IHDR: full-resolution export, the photo's own size.
    assert int.from_bytes(data[16:20], "big") == 1126
    assert int.from_bytes(data[20:24], "big") == 661
    assert region_in_png(page, saved, response, "Chin") > 0.9
    assert problems.errors == []


@pytest.mark.browser
def test_gif_shows_decode_failure(page_factory: Any, tmp_path: Path) -> None:
    pil = pytest.importorskip("PIL.Image")
    gif = tmp_path / "face.gif"
    with pil.open(two_people()) as image:
        image.convert("RGB").save(gif, format="GIF")
    page, _ = page_factory(DESKTOP)
    analyze_file(page, gif)
    page.screenshot(path=str(tmp_path / "gif.png"))
    assert_error(
        page,
        "FailedOperation.ImageDecodeFailed",
        "This image format is not supported or the file is damaged.",
    )
    assert hooks(page)["pointsDrawn"] == 0


@pytest.mark.browser
def test_no_face_photo_says_so(page_factory: Any, tmp_path: Path) -> None:
    page, problems = page_factory(DESKTOP)
    analyze_file(page, shared("robustness", "mtcnn", "no-faces.jpg"))
    page.screenshot(path=str(tmp_path / "no-face.png"))
    assert_error(page, "InvalidParameterValue.NoFaceInPhoto", "No face found in this photo.")
    assert hooks(page)["pointsDrawn"] == 0
    assert page.is_visible("#canvas")  # the photo itself is still shown
    assert problems.errors == []


@pytest.mark.browser
def test_mode_largest_draws_one_face(page_factory: Any, tmp_path: Path) -> None:
    page, problems = page_factory(DESKTOP)
    state = analyze_file(page, two_people(), mode="1")
    page.screenshot(path=str(tmp_path / "largest.png"))
    assert state["error"] is None, state["error"]
    assert (state["faces"], state["pointsDrawn"]) == (1, POINTS)
    assert_faces(response_json(page), 1)
    assert problems.errors == []


@pytest.mark.browser
def test_rotated_photo_with_rotation_detection(page_factory: Any, tmp_path: Path) -> None:
    page, problems = page_factory(DESKTOP)
    photo = shared("landmarks", "images", "rotated__eos_lfpw__image_0001_rot90ccw.png")
    state = analyze_file(page, photo, rotate=True)
    page.screenshot(path=str(tmp_path / "rotated.png"))
    assert state["error"] is None, state["error"]
    assert (state["faces"], state["pointsDrawn"]) == (1, POINTS)
    response = response_json(page)
    assert_faces(response, 1)
    assert (response["ImageWidth"], response["ImageHeight"]) == (600, 412)  # original orientation
    assert region_on_canvas(page, "Chin") > 0.9
    assert problems.errors == []


@pytest.mark.browser
def test_phone_width_has_no_horizontal_overflow(page_factory: Any, tmp_path: Path) -> None:
    page, problems = page_factory(PHONE)
    overflow = "document.scrollingElement.scrollWidth <= window.innerWidth"
    assert page.evaluate(overflow)
    state = analyze_file(page, two_people())
    page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
    assert state["error"] is None, state["error"]
    assert state["pointsDrawn"] == 2 * POINTS
    assert page.evaluate(overflow)
    box = page.locator("#canvas").bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= PHONE["width"]
    assert box["width"] > PHONE["width"] * 0.6  # it uses the width, not a thumbnail
    assert region_on_canvas(page, "Chin") > 0.9  # small on a phone, still in place
    assert problems.errors == []


@pytest.mark.browser
def test_layout_view_shows_reference_figure(page_factory: Any, tmp_path: Path) -> None:
    page, problems = page_factory(DESKTOP)
    page.click("#tab-layout")
    assert page.is_visible("#panel-layout")
    assert page.is_hidden("#panel-analyze")
    assert page.get_attribute("#tab-layout", "aria-selected") == "true"
    image = page.locator("#layout-img")
    image.scroll_into_view_if_needed()
    wait_for(page, "document.getElementById('layout-img').complete")
    assert page.evaluate("document.getElementById('layout-img').naturalWidth") > 0
    assert image.is_visible()
    assert page.text_content("#layout-total") == str(POINTS)
    page.screenshot(path=str(tmp_path / "layout.png"))
    page.click("#tab-analyze")
    assert page.is_visible("#panel-analyze")
    assert problems.errors == []


@pytest.mark.browser
def test_analyze_face_draws_90_points_and_switches_back(page_factory: Any, tmp_path: Path) -> None:
    """The action chooser: AnalyzeFace draws 90 points a face where the response puts them (6 faces on
    the crowd photo: Mode 0 goes up to 10 here); choosing the 888 action again analyses again."""
    page, problems = page_factory(DESKTOP)
    page.select_option("#action", "AnalyzeFace")
    assert page.text_content("#mode option[value='0']") == "All faces (up to 10)"
    assert page.locator("#legend button[data-region]").count() == len(SHAPE90)
    state = analyze_file(page, two_people())
    page.screenshot(path=str(tmp_path / "analyze-face.png"))
    assert state["error"] is None, state["error"]
    assert (state["faces"], state["pointsDrawn"]) == (2, 2 * 90)
    response = response_json(page)
    assert set(response) == {"ImageWidth", "ImageHeight", "FaceShapeSet", "FaceModelVersion", "RequestId"}
    for shape in response["FaceShapeSet"]:
        assert {name: len(points) for name, points in shape.items()} == SHAPE90
    for region in ("FaceProfile", "Mouth", "LeftEyeBrow"):
        assert region_on_canvas(page, region, action="AnalyzeFace") > 0.9, region
    page.click("#legend button[data-region='FaceProfile']")
    assert hooks(page)["pointsDrawn"] == 2 * (90 - 21)

    state = analyze_file(page, shared("robustness", "deepface", "selfie-many-people.jpg"))
    assert (state["faces"], state["pointsDrawn"]) == (6, 6 * (90 - 21))

    mark_pending(page)
    page.select_option("#action", "AnalyzeDenseLandmarks")  # the same photo, analysed again
    state = wait_result(page)
    assert (state["faces"], state["pointsDrawn"]) == (5, 5 * POINTS)
    assert page.text_content("#mode option[value='0']") == "All faces (up to 5)"
    assert len(response_json(page)["DenseFaceShapeSet"]) == 5

    page.click("#tab-layout")
    page.locator("#shape90-img").scroll_into_view_if_needed()
    wait_for(page, "document.getElementById('shape90-img').complete")
    assert page.evaluate("document.getElementById('shape90-img').naturalWidth") > 0
    assert page.text_content("#shape90-total") == "90"
    assert problems.errors == []


class _PhotoHandler(BaseHTTPRequestHandler):
    """Serves the two-face photo at /plain/face.jpg, and at /cors/face.jpg with CORS allowed."""

    photo: bytes = b""
    hits: list[str]

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.hits.append(self.path)
        if self.path not in ("/plain/face.jpg", "/cors/face.jpg"):
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(self.photo)))
        if self.path.startswith("/cors/"):
            self.send_header("Access-Control-Allow-Origin", "*")
        self.end_headers()
        self.wfile.write(self.photo)


@pytest.fixture(scope="module")
def photo_server() -> Iterator[tuple[str, list[str]]]:
    hits: list[str] = []
    handler = type("Handler", (_PhotoHandler,), {"photo": two_people().read_bytes(), "hits": hits})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", hits
    httpd.shutdown()
    httpd.server_close()


def analyze_url(page: Page, url: str) -> dict[str, Any]:
    page.fill("#url", url)
    mark_pending(page)
    page.click("#analyze")
    return wait_result(page)


@pytest.mark.browser
def test_image_url_with_cors(page_factory: Any, photo_server: tuple[str, list[str]], tmp_path: Path) -> None:
    base, hits = photo_server
    page, problems = page_factory(DESKTOP)
    state = analyze_url(page, f"{base}/cors/face.jpg")
    page.screenshot(path=str(tmp_path / "url-cors.png"))
    assert state["error"] is None, state["error"]
    assert (state["faces"], state["pointsDrawn"]) == (2, 2 * POINTS)
    response = response_json(page)
    assert_faces(response, 2)
    assert page.text_content("#file-name") == "image from URL"
    # Fetched by the server (for the analysis) and by the browser (to show it).
    assert hits.count("/cors/face.jpg") >= 2
    assert region_on_canvas(page, "Chin") > 0.9  # the photo is drawn and readable (not tainted)
    with page.expect_download() as info:
        page.click("#download")
    saved = tmp_path / info.value.suggested_filename
    info.value.save_as(saved)
    assert saved.name == "face-denseface.png"
    assert saved.read_bytes().startswith(PNG_SIGNATURE)
    assert region_in_png(page, saved, response, "Chin") > 0.9
    assert problems.errors == []


@pytest.mark.browser
def test_image_url_without_cors(
    page_factory: Any, photo_server: tuple[str, list[str]], tmp_path: Path
) -> None:
    """A site without CORS: the server still analyzes it, the page shows it, export is refused clearly."""
    base, _ = photo_server
    page, _ = page_factory(DESKTOP)
    state = analyze_url(page, f"{base}/plain/face.jpg")
    page.screenshot(path=str(tmp_path / "url-plain.png"))
    assert state["error"] is None, state["error"]
    assert (state["faces"], state["pointsDrawn"]) == (2, 2 * POINTS)
    assert page.is_visible("#canvas")
    page.click("#download")
    assert "cannot be exported" in (page.text_content("#status") or "")


@pytest.mark.browser
def test_the_page_is_served_with_security_headers_and_ignores_a_key_in_a_link(
    page_factory: Any, live_server: LiveServer
) -> None:
    import httpx

    headers = httpx.get(f"{live_server.base_url}/", timeout=5).headers
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    policy = headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    page, problems = page_factory()
    page.goto(f"{live_server.base_url}/#sid=AKIDattacker&skey=attacker")
    page.reload()
    wait_for(page, "window.denseface && document.body.dataset.state === 'idle'")
    assert page.input_value("#sid") == live_server.secret_id  # the key typed earlier in this tab
    assert page.input_value("#skey") == live_server.secret_key
    assert page.evaluate("location.hash") == "#sid=AKIDattacker&skey=attacker"  # left alone, unused
    assert problems.errors == []
