"""Local worker processes for a batch: N spawned processes, one Analyzer each, inputs streamed.

:func:`run_local` takes an iterable of inputs and yields their rows as they finish (not in input
order). At most :data:`DEPTH` inputs per worker are in flight (the one it analyses and the next), and
inputs are taken from the iterable only as workers finish, so memory stays flat whatever the number
of inputs.

A worker that dies (SIGKILL, a segfault in native code, the OOM killer) is replaced at once by a fresh
process; the input it held is tried once more, on another worker, and if that one dies too the input's
row gets ``FailedOperation.ServerError``. ``concurrent.futures.ProcessPoolExecutor`` is not used: after a
worker dies it is broken for good (``BrokenProcessPool``). A worker that cannot load its models stops
the batch with that error (every worker would fail the same way).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import multiprocessing
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from denseface.batch.rows import Row, error_row
from denseface.batch.worker import WorkerConfig, worker_main
from denseface.errors import DensefaceError, InferenceError, ModelsMissingError
from denseface.processes import describe_exit

log = logging.getLogger(__name__)

SERVER_ERROR = InferenceError.code  # FailedOperation.ServerError
#: a slot whose processes die this many times in a row before one is ready stops the batch
MAX_FAILED_STARTS = 3
#: inputs sent to a worker ahead: the one it works on and the next, waiting in its pipe, so that it
#: never waits for this process to read a row before it can start the next photo
DEPTH = 2


@dataclass
class _Job:
    seq: int
    source: str
    attempt: int = 0  # 1: the retry after a worker died on it


class _Slot:
    def __init__(self, index: int) -> None:
        self.index = index
        self.process: BaseProcess | None = None
        self.conn: Connection | None = None
        self.jobs: collections.deque[_Job] = collections.deque()  # the first is being analysed
        self.ready = False
        self.failed_starts = 0
        self.restarts = 0


class LocalPool:
    """``workers`` processes; use as a context manager, :meth:`map` inputs to rows."""

    def __init__(self, workers: int, config: WorkerConfig | None = None) -> None:
        if workers < 1:
            raise ValueError("a batch needs at least one worker")
        self.config = config or WorkerConfig()
        self._context = multiprocessing.get_context("spawn")
        self._slots = [_Slot(i) for i in range(workers)]
        self.restarts = 0

    def __enter__(self) -> LocalPool:
        for slot in self._slots:
            self._spawn(slot)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pids(self) -> list[int | None]:
        return [s.process.pid if s.process is not None else None for s in self._slots]

    def map(self, sources: Iterable[str]) -> Iterator[Row]:
        """The row of every input, as each finishes."""
        inputs = iter(sources)
        retries: collections.deque[_Job] = collections.deque()
        seq = 0

        def next_job() -> _Job | None:
            nonlocal seq
            if retries:
                return retries.popleft()
            source = next(inputs, None)
            if source is None:
                return None
            seq += 1
            return _Job(seq, source)

        for slot in self._slots:
            self._fill(slot, next_job)
        while any(slot.jobs for slot in self._slots):
            waitables: list[Any] = []
            for slot in self._slots:
                if slot.conn is not None and slot.process is not None:
                    waitables += [slot.conn, slot.process.sentinel]
            ready = set(wait(waitables))
            for slot in self._slots:
                if slot.conn is None or slot.process is None:
                    continue
                message = self._receive(slot) if slot.conn in ready else None
                if message is not None:
                    if message[0] == "row" and slot.jobs and slot.jobs[0].seq == message[1]:
                        slot.jobs.popleft()
                        self._fill(slot, next_job)
                        yield message[2]
                    continue
                if slot.process.sentinel in ready or slot.conn in ready:  # it exited (or closed its pipe)
                    lost, waiting, how = self._died(slot)
                    retries.extendleft(reversed(waiting))  # they never started: as they were
                    if lost is not None and lost.attempt == 0:
                        retries.appendleft(_Job(lost.seq, lost.source, 1))
                    self._spawn(slot)
                    self._fill(slot, next_job)
                    if lost is not None and lost.attempt > 0:
                        yield error_row(
                            lost.source,
                            SERVER_ERROR,
                            "the worker process analysing this photo stopped, twice "
                            f"(the last one {how}); the photo was not analysed",
                        )

    def close(self, timeout: float = 5.0) -> None:
        """Stop the workers: each finishes the photo it holds (its row is dropped), within ``timeout``
        for all of them together; then the rest are killed."""
        deadline = time.monotonic() + timeout
        for slot in self._slots:
            if slot.conn is not None:
                with contextlib.suppress(OSError):
                    slot.conn.send(None)
                slot.conn.close()
                slot.conn = None
        for slot in self._slots:
            if slot.process is not None:
                slot.process.join(max(0.0, deadline - time.monotonic()))
                if slot.process.is_alive():
                    slot.process.kill()
                    slot.process.join(timeout)
                slot.process = None

    # ---------------------------------------------------------------------------------------- internals
    def _spawn(self, slot: _Slot) -> None:
        parent_end, child_end = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=worker_main,
            args=(child_end, self.config, slot.index),
            name=f"denseface-batch-{slot.index}",
            daemon=True,
        )
        process.start()
        child_end.close()
        slot.process, slot.conn, slot.ready = process, parent_end, False
        slot.jobs.clear()

    def _fill(self, slot: _Slot, next_job: Callable[[], _Job | None]) -> None:
        while len(slot.jobs) < DEPTH and slot.conn is not None:
            job = next_job()
            if job is None:
                return
            slot.jobs.append(job)
            with contextlib.suppress(OSError):  # it died: its sentinel says so next
                slot.conn.send((job.seq, job.source))

    def _receive(self, slot: _Slot) -> tuple[Any, ...] | None:
        """The next message, or None when the worker is gone; ready/failed are handled here."""
        if slot.conn is None:
            return None
        try:
            message: tuple[Any, ...] = slot.conn.recv()
        except (EOFError, OSError):
            return None
        if message[0] == "ready":
            slot.ready, slot.failed_starts = True, 0
            return ("ready",)
        if message[0] == "failed":
            raise ModelsMissingError(f"a batch worker could not start: {message[1]}")
        return message

    def _died(self, slot: _Slot) -> tuple[_Job | None, list[_Job], str]:
        """Reap the worker in ``slot``: the job it was analysing (None if it never got ready), the jobs
        that were waiting for it, and how it ended."""
        process = slot.process
        if process is None:
            return None, [], "stopped"
        if slot.conn is not None:
            slot.conn.close()
            slot.conn = None
        process.join(5)
        if process.is_alive():  # it closed its pipe but lives on
            process.kill()
            process.join(5)
        how = describe_exit(process.exitcode)
        held = list(slot.jobs)
        slot.jobs.clear()
        job = held.pop(0) if held and slot.ready else None
        if not slot.ready:
            slot.failed_starts += 1
            if slot.failed_starts >= MAX_FAILED_STARTS:
                raise DensefaceError(
                    f"batch worker {slot.index} {how} {MAX_FAILED_STARTS} times while starting"
                )
        slot.restarts += 1
        self.restarts += 1
        where = f" while analysing {job.source}" if job is not None else ""
        retry = " (tried again on a new worker)" if job is not None and job.attempt == 0 else ""
        log.error("batch worker %d (pid %s) %s%s%s", slot.index, process.pid, how, where, retry)
        return job, held, how


def run_local(sources: Iterable[str], workers: int, config: WorkerConfig | None = None) -> Iterator[Row]:
    """Rows of ``sources`` from ``workers`` local processes (a generator: closing it stops them)."""
    config = config or WorkerConfig()
    if config.analyzer_factory is None:
        from denseface.engine import models

        models.locate(config.model_dir)  # missing or corrupt weights: one clear error, before any process
    with LocalPool(workers, config) as pool:
        yield from pool.map(sources)
