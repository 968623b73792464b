"""The worker side: one process, one :class:`~denseface.api.Analyzer`, one job at a time.

Besides the API's jobs it runs the frames of the live streams the server pinned to it, keeping one
tracker per stream (:class:`~denseface.rpc.stream_frames.StreamTrackers`) until the stream's end message.

The server starts it with the ``spawn`` method (a fresh interpreter: nothing of the server's event loop,
threads or sockets is inherited) and talks to it over one socket (:mod:`denseface.server.wire`). The
models are loaded once, before the worker reports ready. A job's library errors go back with their
Tencent code; any other exception goes back as ``InternalError`` with its traceback, and the worker
keeps serving. It exits when the server closes the socket, and at once when the server process dies
(even by SIGKILL), so no worker outlives its server. Ctrl-C (SIGINT, sent to the whole process group)
is left to the server, which then stops its workers itself.

This module is imported by the server process too (it names :func:`worker_main` as the process target),
so the model code is imported inside :func:`worker_main` only.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from denseface import logs
from denseface.errors import DensefaceError
from denseface.processes import exit_with_parent
from denseface.rpc.service import SERVER_ERROR, ServiceOptions
from denseface.server.wire import error_header, recv_job, send_message

if TYPE_CHECKING:
    from denseface.api import Analyzer

log = logging.getLogger(__name__)
#: codes whose traceback the server logs (the others are the caller's fault, not the server's)
_LOGGED_CODES = frozenset({SERVER_ERROR, "InternalError"})


@dataclass(frozen=True)
class WorkerConfig:
    """What every worker is started with (pickled once per process start, never per request)."""

    model_dir: Path | None = None
    options: ServiceOptions = field(default_factory=ServiceOptions)
    #: builds the worker's Analyzer (default ``Analyzer(model_dir)``); must be picklable (tests use one)
    analyzer_factory: Callable[[], Analyzer] | None = None
    log_level: int = logging.INFO
    #: the face-finding profile of the worker's Analyzer ("thorough", "fast" or "exhaustive")
    detector: str = "thorough"


def worker_main(sock: socket.socket, config: WorkerConfig, index: int) -> None:
    """The process target: load the models, report ready, serve jobs until the socket closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    faulthandler.enable()  # a crash in native code prints this process's Python stack to the server log
    logs.configure(config.log_level, f"worker {index}")
    exit_with_parent()
    from denseface.api import Analyzer  # the models' code: imported in worker processes only
    from denseface.rpc.analysis import analyze_job
    from denseface.rpc.stream_frames import FrameJob, StreamTrackers

    try:
        from denseface.engine.pipeline import PipelineOptions

        options = PipelineOptions(detector=config.detector)
        factory = config.analyzer_factory or (lambda: Analyzer(config.model_dir, options=options))
        analyzer = factory()
    except Exception as exc:
        log.exception("could not load the models")
        send_message(sock, {"ready": False, **error_header(exc, traceback.format_exc())})
        return
    streams = StreamTrackers(analyzer)  # one tracker per live stream this worker serves
    send_message(sock, {"ready": True, "pid": os.getpid()})
    log.debug("ready (pid %d)", os.getpid())
    while True:
        try:
            job = recv_job(sock)
        except (EOFError, OSError):
            return  # the server closed its end: it is stopping
        started = time.perf_counter()
        body = b""
        header: dict[str, Any]
        try:
            if isinstance(job, FrameJob):
                body = streams.run(job, config.options)
            else:
                body = analyze_job(analyzer, job, config.options)
            header = {"ok": True}
        except Exception as exc:
            logged = not isinstance(exc, DensefaceError) or exc.code in _LOGGED_CODES
            header = error_header(exc, traceback.format_exc() if logged else "")
        header["seconds"] = time.perf_counter() - started
        try:
            send_message(sock, header, body)
        except OSError:
            return
