"""A batch worker process: one :class:`~denseface.api.Analyzer`, one input at a time, rows back.

Started with ``spawn`` by :mod:`denseface.batch.local` and fed over one ``multiprocessing`` pipe::

    parent → worker   (seq, source)              an input; None to stop
    worker → parent   ("ready", pid)             models loaded
                      ("failed", message)        the Analyzer could not be built (models missing …)
                      ("row", seq, row)          the row of input ``seq``

It ignores SIGINT (Ctrl-C reaches the whole process group; the parent decides) and exits as soon as the
parent process is gone, even by SIGKILL, so no worker outlives its batch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING

from denseface import logs
from denseface.batch.rows import RowOptions
from denseface.errors import DensefaceError
from denseface.processes import exit_with_parent

if TYPE_CHECKING:
    from denseface.api import Analyzer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerConfig:
    """What every worker is started with (pickled once per process)."""

    options: RowOptions = field(default_factory=RowOptions)
    model_dir: Path | None = None
    #: builds the worker's Analyzer (default: ``Analyzer(model_dir)`` with the options' detector);
    #: must be picklable (tests use one to make a worker die)
    analyzer_factory: Callable[[], Analyzer] | None = None
    log_level: int = logging.WARNING


def build_analyzer(config: WorkerConfig) -> Analyzer:
    if config.analyzer_factory is not None:
        return config.analyzer_factory()
    from denseface.api import Analyzer
    from denseface.engine.pipeline import PipelineOptions

    return Analyzer(config.model_dir, options=PipelineOptions(detector=config.options.detector))


def worker_main(conn: Connection, config: WorkerConfig, index: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logs.configure(config.log_level, f"batch worker {index}")
    exit_with_parent()
    from denseface.batch.rows import Fetcher, analyze_source

    fetcher = Fetcher(config.options)
    try:
        analyzer = build_analyzer(config)
    except Exception as exc:
        if not isinstance(exc, DensefaceError):
            log.exception("could not load the models")
        with contextlib.suppress(OSError):  # the parent may already have stopped the batch
            conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    try:
        conn.send(("ready", os.getpid()))
    except OSError:  # the batch was over before this worker was ready (e.g. one photo, two workers)
        return
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        seq, source = job
        row = analyze_source(analyzer, source, config.options, fetcher)
        try:
            conn.send(("row", seq, row))
        except OSError:  # the parent closed the pipe: the batch stops
            return
