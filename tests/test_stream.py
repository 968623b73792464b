"""``GET /v1/stream`` on a real ``denseface serve``, with the ``websockets`` client: frames of a shared clip
as JPEG, answers compared with the library's tracker on the same frames; refusals, a corrupt frame,
latest-wins backpressure, four streams at once. Counts and equalities, never timings."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from denseface.api import Analyzer, Tracker
from denseface.engine.decode import decode_bytes
from denseface.engine.layout import REGION_NAMES
from denseface.engine.tracker import interocular
from denseface.rpc.stream import stream_query, stream_url
from denseface.video import read_frames
from tests.conftest import METRICS_AUTH, OTHER_ID, OTHER_KEY, SECRET_ID, SECRET_KEY, LiveServer, shared

Answer = dict[str, Any]
QUOTA_ID = "AKIDdensefaceSTREAMQUOTA000000000000"
STOPPED_ID = "AKIDdensefaceSTREAMSTOP0000000000000"
FACE_ONLY_ID = "AKIDdensefaceSTREAMFACE0000000000000"


@pytest.fixture(scope="module")
def clip() -> list[tuple[float, bytes]]:
    """single_face.mp4 as (time, 640×360 JPEG) pairs."""
    out = []
    for frame in read_frames(shared("video", "single_face.mp4")):
        ok, jpeg = cv2.imencode(
            ".jpg", cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90]
        )
        assert ok
        out.append((frame.time, jpeg.tobytes()))
    return out


def _open(
    server: LiveServer, secret_id: str = SECRET_ID, secret_key: str = SECRET_KEY, **kw: Any
) -> ClientConnection:
    return connect(
        stream_url(secret_id, secret_key, host=server.endpoint, **kw), max_size=2**24, open_timeout=30
    )


def _recv(ws: ClientConnection) -> Answer:
    answer: Answer = json.loads(ws.recv(timeout=60))
    return answer


def _lockstep(ws: ClientConnection, frames: list[tuple[float, bytes]], *, timed: bool = True) -> list[Answer]:
    """Each frame sent when the previous one is answered (with its clip time): nothing is skipped."""
    answers = []
    for t, jpeg in frames:
        if timed:
            ws.send(json.dumps({"Time": t}))
        ws.send(jpeg)
        answers.append(_recv(ws))
    return answers


def _points(shape: Answer) -> np.ndarray:
    return np.array([[p["X"], p["Y"]] for name in REGION_NAMES for p in shape[name]], np.float64)


def test_stream_matches_the_library_tracker(
    live_server: LiveServer, analyzer: Analyzer, clip: list[tuple[float, bytes]]
) -> None:
    """Every frame answered in order with one face under one TrackId, exactly a DenseFaceShape plus
    TrackId, within 1% IOD of ``Tracker`` (``denseface video``) on the same decoded JPEG frames."""
    with _open(live_server) as ws:
        answers = _lockstep(ws, clip)
    tracker = Tracker(analyzer)
    expected = [tracker.update(decode_bytes(jpeg).rgb, t) for t, jpeg in clip]
    assert [a["Frame"] for a in answers] == list(range(len(clip)))
    for answer, frame in zip(answers, expected, strict=True):
        assert set(answer) == {"Frame", "DenseFaceShapeSet", "RequestId"}
        assert len(answer["DenseFaceShapeSet"]) == len(frame.faces) == 1
        shape = answer["DenseFaceShapeSet"][0]
        assert set(shape) == {"X", "Y", "Width", "Height", "TrackId", *REGION_NAMES}
        assert shape["TrackId"] == 0
        face = frame.faces[0].face
        gap = np.linalg.norm(_points(shape) - face.points, axis=1).mean() / interocular(face.mesh)
        assert gap < 0.01


def test_corrupt_frame_mid_stream(live_server: LiveServer, clip: list[tuple[float, bytes]]) -> None:
    frames = [jpeg for _, jpeg in clip[:6]]
    frames[3] = frames[3][:2] + bytes(range(256)) * 8  # a JPEG marker, then garbage
    frames.insert(2, b"not an image at all")
    with _open(live_server) as ws:
        answers = []
        for jpeg in frames:
            ws.send(jpeg)
            answers.append(_recv(ws))
    codes = [a["Error"]["Code"] if "Error" in a else "OK" for a in answers]
    bad = "FailedOperation.ImageDecodeFailed"
    assert codes == ["OK", "OK", bad, "OK", bad, "OK", "OK"]
    assert [a["Frame"] for a in answers] == list(range(7))
    assert all(a["DenseFaceShapeSet"][0]["TrackId"] == 0 for a in answers if "Error" not in a)


def test_frame_sizes(live_server: LiveServer, clip: list[tuple[float, bytes]]) -> None:
    """A frame over the API's 5 MB image limit gets ``FailedOperation.ImageSizeExceed`` and the stream goes
    on; a message over 8 MiB closes the connection (1009) without being analysed."""
    padded = clip[0][1] + b"\0" * (5 * 1024 * 1024)  # a JPEG with 5 MiB of padding after its end
    with _open(live_server) as ws:
        ws.send(padded)
        too_large = _recv(ws)
        ws.send(clip[1][1])
        fine = _recv(ws)
        ws.send(b"\0" * (9 * 1024 * 1024))
        with pytest.raises(ConnectionClosed) as closed:
            _recv(ws)
    assert too_large["Error"]["Code"] == "FailedOperation.ImageSizeExceed"
    assert fine["DenseFaceShapeSet"][0]["TrackId"] == 0
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009


def test_times_given_by_the_client_must_increase(
    live_server: LiveServer, clip: list[tuple[float, bytes]]
) -> None:
    with _open(live_server) as ws:
        first = _lockstep(ws, [(5.0, clip[0][1])])[0]
        same = _lockstep(ws, [(5.0, clip[1][1])])[0]
        ws.send("{not json")
        ws.send(clip[2][1])
        garbled = _recv(ws)
        ws.send(json.dumps({"Time": 5.05, "pad": "x" * 100_000}))
        ws.send(clip[2][1])
        too_long = _recv(ws)
        later = _lockstep(ws, [(5.1, clip[3][1])])[0]
    assert "DenseFaceShapeSet" in first
    assert "DenseFaceShapeSet" in later
    assert same["Error"]["Code"] == "InvalidParameterValue"
    assert garbled["Error"]["Code"] == "InvalidParameter"
    assert too_long["Error"]["Code"] == "InvalidParameter"


def _refusal(server: LiveServer, url: str) -> tuple[Answer, int | None, str]:
    with connect(url, open_timeout=30) as ws:
        with suppress(ConnectionClosed):  # the refusal may come first
            ws.send(b"\xff\xd8 a frame the server must never read")
        message = json.loads(ws.recv(timeout=30))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=30)
    rcvd = closed.value.rcvd
    return message, rcvd.code if rcvd else None, rcvd.reason if rcvd else ""


def _stream_frames(server: LiveServer) -> float:
    import httpx

    text = httpx.get(f"{server.base_url}/metrics", headers=METRICS_AUTH, timeout=10).text
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("denseface_stream_frames_total")
    )


@pytest.mark.parametrize(
    ("how", "code"),
    [
        ("signature", "AuthFailure.SignatureFailure"),
        ("expired", "AuthFailure.SignatureExpire"),
        ("unknown key", "AuthFailure.SecretIdNotFound"),
        ("action", "InvalidParameterValue"),
        ("no signature", "MissingParameter"),
    ],
)
def test_refused_before_any_frame(live_server: LiveServer, how: str, code: str) -> None:
    host = live_server.endpoint
    if how == "signature":
        query = stream_query(SECRET_ID, "a wrong key", host=host)
    elif how == "expired":
        query = stream_query(SECRET_ID, SECRET_KEY, host=host, timestamp=1_000_000_000)
    elif how == "unknown key":
        query = stream_query("AKIDnobody", SECRET_KEY, host=host)
    elif how == "action":
        query = stream_query(SECRET_ID, SECRET_KEY, host=host, extra={"Action": "AnalyzeFace"})
    else:
        query = "&".join(
            p for p in stream_query(SECRET_ID, SECRET_KEY, host=host).split("&") if "Signature=" not in p
        )
    before = _stream_frames(live_server)
    message, close_code, reason = _refusal(live_server, f"ws://{host}/v1/stream?{query}")
    assert message["Error"]["Code"] == code
    assert message["RequestId"]
    assert (close_code, reason) == (1008, code)
    assert _stream_frames(live_server) == before  # no frame was taken


def test_a_replayed_stream_url_is_refused(live_server: LiveServer, clip: list[tuple[float, bytes]]) -> None:
    """The same signed query twice (same Nonce and Timestamp): the second connection is a replay,
    refused before any frame as the API refuses a replayed v1 call."""
    host = live_server.endpoint
    url = f"ws://{host}/v1/stream?{stream_query(SECRET_ID, SECRET_KEY, host=host)}"
    with connect(url, max_size=2**24, open_timeout=30) as ws:
        assert "DenseFaceShapeSet" in _lockstep(ws, clip[:1], timed=False)[0]
    message, close_code, reason = _refusal(live_server, url)
    assert message["Error"]["Code"] == "AuthFailure.SignatureExpire"
    assert (close_code, reason) == (1008, "AuthFailure.SignatureExpire")


def test_rate_limit_per_frame(live_server: LiveServer, clip: list[tuple[float, bytes]]) -> None:
    """OTHER_ID is limited to 2 calls a second: frames sent back to back are refused one by one with the
    API's code, and the stream goes on."""
    with _open(live_server, OTHER_ID, OTHER_KEY) as ws:
        answers = _lockstep(ws, clip[:8], timed=False)
    codes = [a["Error"]["Code"] if "Error" in a else "OK" for a in answers]
    assert "OK" in codes
    assert "RequestLimitExceeded" in codes
    assert set(codes) <= {"OK", "RequestLimitExceeded"}


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_unread_answers_latest_wins(live_server: LiveServer, clip: list[tuple[float, bytes]]) -> None:
    """200 frames sent without reading: stale frames are skipped, each frame is answered or listed as
    skipped exactly once, in order; the server's memory stays flat."""
    frames = [jpeg for _, jpeg in clip] * 3
    frames = frames[:200]
    rss = _rss_kb(live_server.process.pid)
    with _open(live_server) as ws:
        for jpeg in frames:
            ws.send(jpeg)
        answers: list[Answer] = []
        while not answers or answers[-1]["Frame"] < len(frames) - 1:
            answers.append(_recv(ws))
    grown_mb = (_rss_kb(live_server.process.pid) - rss) / 1024
    accounted = []
    for a in answers:
        accounted += [*a.get("Skipped", []), a["Frame"]]
    assert accounted == list(range(len(frames)))
    assert len(answers) < len(frames)
    assert all("DenseFaceShapeSet" in a for a in answers)
    assert grown_mb < 40


def test_four_streams_at_once(live_server: LiveServer, clip: list[tuple[float, bytes]]) -> None:
    """Four connections interleaved frame by frame over two workers: each gets every one of its frames
    answered with its own tracker (TrackId 0 in each, one face in every frame)."""
    with ExitStack() as stack:
        streams = [stack.enter_context(_open(live_server)) for _ in range(4)]
        answers: list[list[Answer]] = [[] for _ in streams]
        for _, jpeg in clip[:24]:
            for ws in streams:
                ws.send(jpeg)
            for ws, got in zip(streams, answers, strict=True):
                got.append(_recv(ws))
    for got in answers:
        assert [a["Frame"] for a in got] == list(range(24))
        assert all([s["TrackId"] for s in a["DenseFaceShapeSet"]] == [0] for a in got)


def test_mode_and_versions(live_server: LiveServer, clip: list[tuple[float, bytes]]) -> None:
    two = cv2.imdecode(np.frombuffer(clip[0][1], np.uint8), cv2.IMREAD_COLOR)
    ok, pair = cv2.imencode(".jpg", np.hstack([two, two]))
    assert ok
    with _open(live_server, mode=1, version="2018-03-01", region=None) as ws:
        ws.send(pair.tobytes())
        largest = _recv(ws)
    with _open(live_server) as ws:
        ws.send(pair.tobytes())
        both = _recv(ws)
    assert len(largest["DenseFaceShapeSet"]) == 1
    assert sorted(s["TrackId"] for s in both["DenseFaceShapeSet"]) == [0, 1]


@pytest.fixture(scope="module")
def own_server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server of this module's own (two workers; keys with a quota, a state, an action list)."""
    from tests import serving

    tmp_path = tmp_path_factory.mktemp("stream")
    keys = tmp_path / "keys.toml"
    keys.write_text(
        f'[[keys]]\nsecret_id = "{SECRET_ID}"\nsecret_key = "{SECRET_KEY}"\nqps = 1000\n'
        f'[[keys]]\nsecret_id = "{QUOTA_ID}"\nsecret_key = "{SECRET_KEY}"\nquota = 2\n'
        f'[[keys]]\nsecret_id = "{STOPPED_ID}"\nsecret_key = "{SECRET_KEY}"\nstate = "stopped"\n'
        f'[[keys]]\nsecret_id = "{FACE_ONLY_ID}"\nsecret_key = "{SECRET_KEY}"\nactions = ["AnalyzeFace"]\n'
    )
    os.chmod(keys, 0o600)
    server = serving.start(model_dir, tmp_path, keys, env={"DENSEFACE_WORKERS": "2"})
    try:
        yield server
    finally:
        serving.stop(server)


def test_worker_crash_ends_only_its_streams(own_server: LiveServer, clip: list[tuple[float, bytes]]) -> None:
    """Two streams pinned to the two workers; the first worker is killed: its stream gets an error
    message and close code 1011, the other stream goes on with its tracker."""
    import signal

    import httpx

    server = own_server
    with _open(server) as first, _open(server) as second:
        _lockstep(first, clip[:3], timed=False)
        _lockstep(second, clip[:3], timed=False)
        health = httpx.get(f"{server.base_url}/healthz", headers=METRICS_AUTH, timeout=10)
        workers = health.json()["worker_processes"]
        os.kill(workers[0]["pid"], signal.SIGKILL)  # slot 0 holds the first stream (fewest, lowest)
        first.send(clip[3][1])
        ended = _recv(first)
        with pytest.raises(ConnectionClosed) as closed:
            first.recv(timeout=30)
        rest = _lockstep(second, clip[3:10], timed=False)
    assert ended["Error"]["Code"] == "FailedOperation.ServerError"
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1011
    assert all(a["DenseFaceShapeSet"][0]["TrackId"] == 0 for a in rest)


def test_account_state_actions_and_quota(own_server: LiveServer, clip: list[tuple[float, bytes]]) -> None:
    """A stopped key and a key without the action are refused at connection; a quota of 2 answers two
    frames, refuses the next ones frame by frame, and then refuses a new connection."""
    server = own_server
    host = server.endpoint
    for secret_id, code in (
        (STOPPED_ID, "ResourceUnavailable.StopUsing"),
        (FACE_ONLY_ID, "ResourceUnavailable.NotReady"),
    ):
        message, close_code, _ = _refusal(server, stream_url(secret_id, SECRET_KEY, host=host))
        assert (message["Error"]["Code"], close_code) == (code, 1008)
    with _open(server, QUOTA_ID) as ws:
        answers = _lockstep(ws, clip[:4], timed=False)
    codes = [a["Error"]["Code"] if "Error" in a else "OK" for a in answers]
    assert codes == ["OK", "OK", "ResourceUnavailable.LowBalance", "ResourceUnavailable.LowBalance"]
    message, close_code, _ = _refusal(server, stream_url(QUOTA_ID, SECRET_KEY, host=host))
    assert (message["Error"]["Code"], close_code) == ("ResourceUnavailable.LowBalance", 1008)
