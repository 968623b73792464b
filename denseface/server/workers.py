"""Inference in worker processes: the server's pool of N processes, each with its own Analyzer.

The server process keeps the connections, the protocol, the deadline and the in-flight cap; a worker
(:mod:`denseface.server.worker_process`) does the CPU work of one job at a time. Everything here runs on
the server's event loop — no threads — and talks to each worker over a socket pair
(:mod:`denseface.server.wire`): the image travels as raw bytes, the answer comes back as the response
fields' JSON, which the server splices into the envelope.

Jobs wait in the server, taken in turn across keys (:class:`~denseface.server.fair_queue.FairQueue`:
in arrival order within a key), and go to a worker only when it is idle, so:

* **a key's flood delays another key's job by at most one job per worker**, and while other keys are
  active a key holds at most all workers but one per other active key
  (:class:`~denseface.server.fair_queue.Shares`), so another key's job usually finds a worker free;
* **a queued job whose request timed out never starts** (it is dropped from the queue);
* **no job holds a worker longer than ``stuck_after`` seconds** (in the server: the request deadline):
  past that, its worker is killed and a new one takes the slot, so the deadline frees the worker, not
  only the client. A job whose request timed out while it ran (it had waited in the queue) may finish
  within that limit, its answer dropped: killing it would cost a worker start (seconds of model
  loading) for a job that is about to end;
* **a worker that dies** (SIGKILL, a segfault, the kernel's OOM killer) fails only the job it held, with
  ``FailedOperation.ServerError`` (:class:`~denseface.errors.InferenceError`), and ends the live streams
  pinned to it (:class:`StreamEnded`: their trackers died with it); a new process replaces it at once (a
  worker that keeps failing to start is retried with a growing pause, up to 30 s).

**Streams** (``/v1/stream``): :meth:`ProcessPool.open_stream` pins a connection to the live worker with
the fewest streams; its frames (:meth:`ProcessPool.run_frame`) wait in that worker's own queue, in
arrival order, and go first when it is idle; that worker keeps the stream's tracker until
:meth:`ProcessPool.close_stream` sends the end message. Each stream has at most two frames in flight
(the server drops stale ones), and the API's jobs go to the idle worker with the fewest streams, so
neither starves the other; a frame counts in its key's share like any job.

Workers are started with ``spawn`` (safe with the event loop and uvloop), all at start-up, each loading
the models once. :meth:`ProcessPool.close` stops them; a worker also exits by itself when the server
process dies.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import multiprocessing
import socket
import time
from multiprocessing.process import BaseProcess
from typing import Any

from denseface.errors import DensefaceError, InferenceError
from denseface.processes import describe_exit
from denseface.rpc.service import AnalyzeJob
from denseface.rpc.stream_frames import FrameJob
from denseface.server.fair_queue import FairQueue, Shares
from denseface.server.pool_records import (
    BUSY,
    IDLE,
    STARTING,
    STOPPED,
    PoolStats,
    QueuedJob,
    Stream,
    StreamEnded,
    WorkerExit,
    WorkerInfo,
    WorkerSlot,
)
from denseface.server.wire import WireError, read_message, rebuild_error
from denseface.server.worker_process import WorkerConfig, worker_main

log = logging.getLogger(__name__)

MAX_RESTART_PAUSE = 30.0


class ProcessPool:
    """``size`` worker processes; :meth:`start` them, :meth:`run` jobs, :meth:`close` at shutdown."""

    def __init__(
        self,
        size: int,
        config: WorkerConfig | None = None,
        *,
        stuck_after: float = 30.0,
        start_timeout: float = 120.0,
    ) -> None:
        if size < 1:
            raise ValueError("a pool needs at least one worker")
        self.size = size
        self._config = config or WorkerConfig()
        self._stuck_after = stuck_after
        self._start_timeout = start_timeout
        self._context = multiprocessing.get_context("spawn")
        self._slots = [WorkerSlot(i) for i in range(size)]
        self._pending: FairQueue[QueuedJob] = FairQueue()
        self._shares = Shares()
        self._wake: asyncio.TimerHandle | None = None  # a dispatch when a key's share may grow
        self._spawn_lock = asyncio.Lock()
        self._closing = False
        self._started = False  # start() done: from now on a stopped worker is replaced
        self._restarts = 0
        self._abandoned: dict[str, float] = {}  # request id → seconds its job had run when it gave up
        self._jobs = 0
        self._handoff = 0.0
        self._stream_ids = 0

    # ------------------------------------------------------------------------------------------- public
    async def start(self) -> None:
        """Start every worker and wait until each has loaded its models; raise if one cannot."""
        for slot in self._slots:
            await self._spawn(slot)
        try:
            ready = [slot.ready for slot in self._slots if slot.ready is not None]
            await asyncio.wait_for(asyncio.gather(*ready), self._start_timeout)
        except BaseException:
            await self.close()
            raise
        self._started = True
        log.info("%d worker process(es) ready: pids %s", self.size, [s.pid for s in self._slots])

    async def run(self, job: AnalyzeJob, request_id: str = "-", key: str = "-") -> bytes:
        """The response fields' JSON for ``job``, from the next idle worker, in ``key``'s turn. Cancelled
        while queued (the request's deadline passed), the job never reaches a worker; cancelled while a
        worker runs it, it runs on (its answer dropped) until it ends or reaches ``stuck_after``."""
        return await self._submit(job, request_id, key)

    async def _submit(
        self, job: AnalyzeJob | FrameJob, request_id: str, key: str, stream: Stream | None = None
    ) -> bytes:
        if self._closing:
            raise InferenceError("the server is shutting down; retry the request")
        ticket = QueuedJob(job, request_id, key, asyncio.get_running_loop().create_future(), stream)
        self._shares.seen(key)
        if stream is None:
            self._pending.append(key, ticket)
        else:
            stream.slot.frames.append(ticket)
        self._dispatch()
        try:
            return await ticket.future
        except asyncio.CancelledError:
            queued = ticket in stream.slot.frames if stream is not None else self._pending.remove(key, ticket)
            if stream is not None and queued:
                stream.slot.frames.remove(ticket)
            if not queued:
                self._abandon(ticket)
            raise

    def open_stream(self, key: str = "-") -> Stream:
        """A new stream under ``key``, pinned to the live worker that holds the fewest streams (then the
        lowest slot). Its frames run there, in arrival order among that worker's frames, through one
        tracker."""
        if self._closing:
            raise InferenceError("the server is shutting down; retry")
        alive = [s for s in self._slots if s.state in (IDLE, BUSY)] or self._slots
        slot = min(alive, key=lambda s: (len(s.streams), s.index))
        self._stream_ids += 1
        stream = Stream(self._stream_ids, slot, key)
        slot.streams.add(stream)
        return stream

    async def run_frame(
        self, stream: Stream, image: bytes, time_s: float, mode: int, request_id: str
    ) -> bytes:
        """The answer's fields for one frame of ``stream`` from its worker; :class:`StreamEnded` when
        that worker stopped (now or since the stream began)."""
        if stream.ended is not None:
            raise StreamEnded(stream.ended)
        job = FrameJob(stream.id, image, time=time_s, mode=mode)
        return await self._submit(job, request_id, stream.key, stream)

    def close_stream(self, stream: Stream) -> None:
        """The stream is over: its worker frees its tracker (an end message, queued behind its frames)."""
        stream.slot.streams.discard(stream)
        if stream.ended is None and not self._closing:
            stream.ended = "the stream is closed"
            future = asyncio.get_running_loop().create_future()
            future.add_done_callback(lambda f: f.exception() if not f.cancelled() else None)
            end = FrameJob(stream.id, b"", end=True)
            stream.slot.frames.append(QueuedJob(end, "-", stream.key, future, stream))
            self._dispatch()

    def took_worker(self, request_id: str) -> float | None:
        """How long ``request_id``'s job had run on a worker when its request gave up (``None``: it was
        still queued, and never ran). Answers once per request."""
        return self._abandoned.pop(request_id, None)

    def stats(self) -> PoolStats:
        workers = [WorkerInfo(s.index, s.pid, s.state, s.jobs, s.restarts) for s in self._slots]
        return PoolStats(
            size=self.size,
            alive=sum(w.state in (IDLE, BUSY) for w in workers),
            busy=sum(w.state == BUSY for w in workers),
            queued=len(self._pending) + sum(len(s.frames) for s in self._slots),
            restarts=self._restarts,
            jobs=self._jobs,
            handoff_seconds=self._handoff,
            workers=workers,
        )

    async def close(self, timeout: float = 5.0) -> None:
        """Stop every worker (SIGTERM, then SIGKILL after ``timeout``); queued jobs fail."""
        self._closing = True
        queued = [self._pending.popleft() for _ in range(len(self._pending))]
        for slot in self._slots:
            queued += slot.frames
            slot.frames.clear()
        for ticket in queued:
            if not ticket.future.done():
                ticket.future.set_exception(InferenceError("the server is shutting down; retry the request"))
        async with self._spawn_lock:  # no process is being started past this point
            for slot in self._slots:
                if slot.writer is not None:
                    slot.writer.close()
                if slot.process is not None and slot.process.is_alive():
                    slot.process.terminate()
        tasks = [slot.task for slot in self._slots if slot.task is not None]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=timeout)
            for slot in self._slots:
                if slot.process is not None and slot.process.is_alive():
                    slot.process.kill()
            for task in late:  # e.g. pausing before another start attempt
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=timeout)

    # ------------------------------------------------------------------------------------------ workers
    async def _spawn(self, slot: WorkerSlot) -> None:
        loop = asyncio.get_running_loop()
        async with self._spawn_lock:
            if self._closing:
                return
            parent_end, child_end = socket.socketpair()
            process = self._context.Process(
                target=worker_main,
                args=(child_end, self._config, slot.index),
                name=f"denseface-worker-{slot.index}",
                daemon=True,
            )
            try:
                await asyncio.to_thread(process.start)
            except BaseException:
                parent_end.close()
                raise
            finally:
                child_end.close()
            reader, writer = await asyncio.open_connection(sock=parent_end)
            slot.process, slot.writer, slot.pid, slot.state = process, writer, process.pid, STARTING
            slot.generation += 1
            slot.kill_reason = None
            slot.ready = loop.create_future()
            slot.task = asyncio.create_task(self._serve(slot, process, reader, slot.ready))

    async def _serve(
        self,
        slot: WorkerSlot,
        process: BaseProcess,
        reader: asyncio.StreamReader,
        ready: asyncio.Future[None],
    ) -> None:
        """Read everything the worker in ``slot`` sends, until it exits; then replace it."""
        failure: BaseException | None = None
        restart = True
        try:
            try:
                header, _ = await asyncio.wait_for(read_message(reader), self._start_timeout)
            except asyncio.TimeoutError:
                raise WorkerExit(f"not ready after {self._start_timeout:g} s") from None
            if not header.get("ready"):
                raise rebuild_error(header)  # it could not load its models
            slot.pid, slot.state, slot.failed_starts = int(header.get("pid") or process.pid or 0), IDLE, 0
            ready.set_result(None)
            self._dispatch()
            while True:
                header, body = await read_message(reader)
                self._finish(slot, header, body)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:  # it exited
            failure = exc
        except (WireError, WorkerExit, DensefaceError) as exc:  # it is useless: make sure it is gone
            failure = exc
            slot.kill_reason = slot.kill_reason or f"stopped: {exc}"
            process.kill()
        except asyncio.CancelledError:  # the event loop is going away: stop, do not replace
            restart = False
            process.kill()
            raise
        finally:
            await self._exited(slot, process, ready, failure, restart=restart)

    async def _exited(
        self,
        slot: WorkerSlot,
        process: BaseProcess,
        ready: asyncio.Future[None],
        failure: BaseException | None,
        *,
        restart: bool,
    ) -> None:
        was_ready = ready.done()
        slot.state, slot.pid = STOPPED, process.pid
        if slot.writer is not None:
            slot.writer.close()
            slot.writer = None
        if slot.timer is not None:
            slot.timer.cancel()
            slot.timer = None
        how = await _reap(process)
        if slot.kill_reason:
            how = f"{how} ({slot.kill_reason})"
        if not was_ready:
            ready.set_exception(failure if isinstance(failure, DensefaceError) else WorkerExit(how))
            ready.exception()  # retrieved: only start() waits for it, and it may not
        ticket, slot.ticket = slot.ticket, None
        self._end_streams(slot, f"worker {slot.index} (pid {process.pid}) {how}")
        quiet = self._closing or not restart or not self._started  # (start() reports a failed start)
        if ticket is not None and not ticket.future.done():
            error = (
                StreamEnded(ticket.stream.ended or "the stream's worker stopped")
                if ticket.stream is not None
                else InferenceError("the worker process analysing the image stopped; retry the request")
            )
            error.__cause__ = WorkerExit(f"worker {slot.index} (pid {process.pid}) {how}")
            ticket.future.set_exception(error)
        if quiet:
            return
        if ticket is not None:
            log.error(
                "worker %d (pid %s) %s while serving request %s",
                slot.index,
                process.pid,
                how,
                ticket.request_id,
            )
        else:
            log.error("worker %d (pid %s) %s", slot.index, process.pid, how)
        slot.restarts += 1
        self._restarts += 1
        if not was_ready:
            await self._pause(slot)
        while not self._closing:
            try:
                await self._spawn(slot)
                return
            except Exception:  # e.g. out of file descriptors or processes
                log.exception("worker %d could not be started", slot.index)
                await self._pause(slot)

    @staticmethod
    async def _pause(slot: WorkerSlot) -> None:
        """Before another start attempt of a worker that failed to start: 1 s, 2 s, 4 s … up to 30 s."""
        slot.failed_starts += 1
        pause = min(MAX_RESTART_PAUSE, 0.5 * 2**slot.failed_starts)
        log.error("worker %d failed to start; next attempt in %.1f s", slot.index, pause)
        await asyncio.sleep(pause)

    # ---------------------------------------------------------------------------------------------- jobs
    def _dispatch(self) -> None:
        """Give queued jobs to idle workers. A stream's frame waits for its own worker and goes first
        there (a stream holds at most two frames in flight); the API's jobs go to the idle worker with
        the fewest streams, the key with the fewest jobs running first, then oldest, each key within its
        share of the workers."""
        while True:
            idle = [s for s in self._slots if s.state == IDLE and s.ticket is None and s.writer is not None]
            if not idle:
                return
            frame = next(((slot, t) for slot in idle if (t := self._next_frame(slot)) is not None), None)
            if frame is not None:
                self._send(*frame)
                continue
            if not self._pending:
                return
            running = collections.Counter(s.ticket.key for s in self._slots if s.ticket is not None)
            caps = self._shares.caps(self.size, self._pending.keys(), running)
            ticket = self._pending.take(running, caps)
            if ticket is None:  # a worker kept for another active key: look again when that may change
                self._wake_later()
                return
            if ticket.future.done():  # its request timed out: never starts
                continue
            self._send(min(idle, key=lambda s: (len(s.streams), s.index)), ticket)

    def _next_frame(self, slot: WorkerSlot) -> QueuedJob | None:
        """The oldest live frame waiting for ``slot``'s worker (frames of a replaced worker fail)."""
        while slot.frames:
            ticket = slot.frames.popleft()
            stream = ticket.stream
            if ticket.future.done():
                continue
            if stream is not None and stream.generation != slot.generation:  # its worker was replaced
                ticket.future.set_exception(StreamEnded(stream.ended or "the stream's worker stopped"))
                continue
            return ticket
        return None

    def _send(self, slot: WorkerSlot, ticket: QueuedJob) -> None:
        if slot.writer is None:  # pragma: no cover - idle slots have a writer
            raise WireError("no socket to an idle worker")
        (prefix, body), ticket.frames = ticket.frames, (b"", b"")  # the ticket no longer holds the image
        slot.state, slot.ticket, ticket.dispatched = BUSY, ticket, time.perf_counter()
        slot.writer.write(prefix)
        slot.writer.write(body)  # the transport keeps what the socket does not take at once
        slot.timer = asyncio.get_running_loop().call_later(self._stuck_after, self._stuck, slot, ticket)

    def _end_streams(self, slot: WorkerSlot, how: str) -> None:
        """The worker in ``slot`` stopped: every stream pinned to it ends, with the reason, and the frames
        waiting for it fail."""
        for stream in slot.streams:
            stream.ended = f"the worker process holding this stream stopped ({how}); reconnect"
        slot.streams.clear()
        while slot.frames:
            ticket = slot.frames.popleft()
            if ticket.stream is not None and not ticket.future.done():
                ticket.future.set_exception(StreamEnded(ticket.stream.ended or "the stream's worker stopped"))

    def _wake_later(self) -> None:
        delay = self._shares.next_change()
        if delay is None or (self._wake is not None and not self._wake.cancelled()):
            return

        def wake() -> None:
            self._wake = None
            self._dispatch()

        self._wake = asyncio.get_running_loop().call_later(delay + 0.01, wake)

    def _finish(self, slot: WorkerSlot, header: dict[str, Any], body: bytes) -> None:
        ticket, slot.ticket = slot.ticket, None
        if ticket is None:
            raise WireError("a reply without a job")
        self._shares.seen(ticket.key)
        if slot.timer is not None:
            slot.timer.cancel()
            slot.timer = None
        slot.state = IDLE
        slot.jobs += 1
        self._jobs += 1
        worked = header.get("seconds")
        if isinstance(worked, (int, float)):
            self._handoff += max(0.0, time.perf_counter() - ticket.dispatched - float(worked))
        if not ticket.future.done():  # done: the request timed out meanwhile, the answer is dropped
            if header.get("ok"):
                ticket.future.set_result(body)
            else:
                ticket.future.set_exception(rebuild_error(header))
        self._dispatch()

    def _abandon(self, ticket: QueuedJob) -> None:
        """The request of a running job gave up: note how long the job had run (its worker is killed
        only when the job reaches ``stuck_after``)."""
        if any(slot.ticket is ticket for slot in self._slots):
            self._abandoned[ticket.request_id] = time.perf_counter() - ticket.dispatched
            while len(self._abandoned) > 1024:  # never asked for
                del self._abandoned[next(iter(self._abandoned))]

    def _stuck(self, slot: WorkerSlot, ticket: QueuedJob) -> None:
        if slot.ticket is ticket and slot.process is not None:
            slot.kill_reason = f"killed: still busy {self._stuck_after:g} s after it got its job"
            log.error(
                "worker %d (pid %s) is stuck on request %s: killing it",
                slot.index,
                slot.pid,
                ticket.request_id,
            )
            slot.process.kill()


async def _reap(process: BaseProcess) -> str:
    """Wait (without blocking the loop) until ``process`` has exited; how it ended, in words."""
    for _ in range(200):  # the socket closes a moment before the process can be reaped
        if process.exitcode is not None:
            break
        await asyncio.sleep(0.01)
    else:
        process.kill()  # it closed its socket or broke the protocol but did not exit
        await asyncio.to_thread(process.join, 5)
    return describe_exit(process.exitcode)
