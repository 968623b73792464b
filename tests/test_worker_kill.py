"""Worker processes of a real ``denseface serve``: a worker SIGKILLed under load, and the server's
processes at shutdown. Counts, not timings: which request the killed worker holds is made certain by
stopping it (SIGSTOP) until ``/healthz`` shows it busy, then killing it."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from denseface.rpc.signing import sign_tc3_request
from tests.conftest import (
    METRICS_AUTH,
    METRICS_TOKEN,
    SECRET_ID,
    SECRET_KEY,
    LiveServer,
    free_port,
    shared,
    write_keys,
)

CLIENTS = 6  # concurrent connections, more than the 2 workers: there is always a queue


@contextmanager
def serve(model_dir: Path, work: Path, workers: int = 2) -> Iterator[LiveServer]:
    """``denseface serve`` with ``workers`` worker processes on a free port, ready (all workers up)."""
    creds = work / "credentials.toml"
    write_keys(creds, f'[[keys]]\nsecret_id = "{SECRET_ID}"\nsecret_key = "{SECRET_KEY}"\nqps = 100000\n')
    port = free_port()
    env = {
        **os.environ,
        "DENSEFACE_MODEL_DIR": str(model_dir),
        "DENSEFACE_CONFIG_DIR": str(work / "config"),
        "DENSEFACE_WORKERS": str(workers),
        "DENSEFACE_METRICS_TOKEN": METRICS_TOKEN,
    }
    log_path = work / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "denseface", "serve", "--port", str(port), "--credentials", str(creds)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = LiveServer(port, SECRET_ID, SECRET_KEY, proc, log_path)
    try:
        until(lambda: health(server).get("status") == "ok", 60, server, "the server never became ready")
        yield server
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def health(server: LiveServer) -> dict[str, Any]:
    if server.process.poll() is not None:
        pytest.fail(f"denseface serve exited:\n{server.log()}")
    try:
        body: dict[str, Any] = httpx.get(f"{server.base_url}/healthz", headers=METRICS_AUTH, timeout=2).json()
    except httpx.HTTPError:
        return {}
    return body


def until(condition: Any, seconds: float, server: LiveServer, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {seconds} s:\n{server.log()[-3000:]}")
        time.sleep(0.05)


def children(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (from /proc)."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                kids = {int(p) for p in (task / "children").read_text().split()}
            except OSError:
                continue
            todo.extend(kids - found)
            found |= kids
    return found


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")  # a zombie waiting for a reaper is dead too


@dataclass(frozen=True)
class Outcome:
    code: str  # "OK", the Error.Code, or "transport: <exception>"
    request_id: str | None


def post(http: httpx.Client, server: LiveServer, body: bytes) -> Outcome:
    headers = sign_tc3_request(
        SECRET_ID,
        SECRET_KEY,
        host=server.endpoint,
        action="AnalyzeDenseLandmarks",
        version="2020-03-03",
        timestamp=int(time.time()),
        payload=body,
        region="ap-guangzhou",
        language="en-US",
    )
    try:
        response = http.post("/", content=body, headers=headers)
    except httpx.HTTPError as exc:
        return Outcome(f"transport: {type(exc).__name__}: {exc}", None)
    inner = response.json()["Response"]
    if response.status_code != 200:
        return Outcome(f"HTTP {response.status_code}", inner.get("RequestId"))
    if "Error" in inner:
        return Outcome(inner["Error"]["Code"], inner.get("RequestId"))
    return Outcome("OK" if len(inner["DenseFaceShapeSet"]) == 2 else "wrong faces", inner.get("RequestId"))


def worker(server: LiveServer, slot: int) -> dict[str, Any]:
    processes: list[dict[str, Any]] = health(server)["worker_processes"]
    return processes[slot]


def test_a_killed_worker_fails_only_its_request_and_is_replaced(model_dir: Path, tmp_path: Path) -> None:
    image = shared("robustness", "face_recognition", "two_people.jpg").read_bytes()
    body = json.dumps({"Image": base64.b64encode(image).decode()}).encode()
    with serve(model_dir, tmp_path) as server:
        outcomes: list[Outcome] = []
        stop = threading.Event()

        def client() -> None:
            with httpx.Client(base_url=server.base_url, timeout=30) as http:  # one connection, kept alive
                while not stop.is_set():
                    outcomes.append(post(http, server, body))

        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        try:
            until(lambda: len(outcomes) >= 10, 60, server, "no load")
            # slot 0: after the restart, requests sent one at a time go to the lowest idle slot
            victim = worker(server, 0)["pid"]
            os.kill(victim, signal.SIGSTOP)  # frozen: whatever job it holds, it cannot finish it
            time.sleep(0.3)  # a reply it sent just before is read by now (the server then gives it the next)
            until(lambda: worker(server, 0)["state"] == "busy", 10, server, "the stopped worker got no job")
            os.kill(victim, signal.SIGKILL)
            until(
                lambda: health(server).get("workers_alive") == 2 and worker(server, 0)["pid"] != victim,
                10,
                server,
                "no replacement worker",
            )
            done = len(outcomes)
            until(lambda: len(outcomes) >= done + 10, 60, server, "no load after the restart")
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=60)

        codes = [o.code for o in outcomes]
        assert all(o.request_id for o in outcomes if not o.code.startswith("transport")), outcomes
        assert [c for c in codes if c.startswith("transport")] == []  # no connection dropped
        failed = [o for o in outcomes if o.code != "OK"]
        assert [o.code for o in failed] == ["FailedOperation.ServerError"], codes  # only the held request
        assert codes.count("OK") == len(outcomes) - 1
        log = server.log()
        assert f"pid {victim}) was killed by SIGKILL while serving request {failed[0].request_id}" in log

        state = health(server)
        assert (state["status"], state["workers_alive"], state["worker_restarts"]) == ("ok", 2, 1)
        assert gone(victim)
        metrics = httpx.get(f"{server.base_url}/metrics", headers=METRICS_AUTH).text
        assert "denseface_worker_restarts_total 1.0" in metrics
        assert (
            'denseface_requests_total{action="AnalyzeDenseLandmarks",code="FailedOperation.ServerError"} 1.0'
            in metrics
        )

        # later requests succeed, and the replacement serves them
        jobs = worker(server, 0)["jobs"]
        with httpx.Client(base_url=server.base_url, timeout=30) as http:
            later = [post(http, server, body).code for _ in range(3)]
        assert later == ["OK"] * 3
        assert worker(server, 0)["jobs"] == jobs + 3


def test_the_server_process_loads_no_model_code(model_dir: Path, tmp_path: Path) -> None:
    with serve(model_dir, tmp_path, workers=1) as server:
        mapped = Path(f"/proc/{server.process.pid}/maps").read_text()
        assert "ai_edge_litert" not in mapped
        assert "cv2" not in mapped
        assert "numpy" not in mapped
        worker_maps = Path(f"/proc/{worker(server, 0)['pid']}/maps").read_text()
        assert "ai_edge_litert" in worker_maps  # the models live in the worker


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_no_worker_outlives_the_server(model_dir: Path, tmp_path: Path, how: signal.Signals) -> None:
    """SIGTERM/SIGINT: the server stops its workers; SIGKILL: the workers notice and exit."""
    with serve(model_dir, tmp_path) as server:
        pids = children(server.process.pid)
        workers = {w["pid"] for w in health(server)["worker_processes"]}
        assert workers <= pids
        server.process.send_signal(how)
        server.process.wait(timeout=15)
        until(lambda: all(gone(pid) for pid in pids), 10, server, "processes left behind")
    if how != signal.SIGKILL:
        assert "Traceback" not in server.log(), server.log()
