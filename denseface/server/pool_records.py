"""The records of the worker pool (:mod:`denseface.server.workers`): its workers' slots, the jobs they
run, the live streams pinned to them, and what the pool reports."""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess

from denseface.errors import InferenceError
from denseface.rpc.service import AnalyzeJob
from denseface.rpc.stream_frames import FrameJob
from denseface.server.wire import job_frames

STARTING, IDLE, BUSY, STOPPED = "starting", "idle", "busy", "stopped"


class WorkerExit(Exception):
    """How a worker process ended (the ``__cause__`` of the ``ServerError`` its request answers)."""


@dataclass(frozen=True)
class WorkerInfo:
    slot: int
    pid: int | None
    state: str  # starting, idle, busy, stopped
    jobs: int  # jobs this slot's processes finished
    restarts: int  # processes this slot started after the first


@dataclass(frozen=True)
class PoolStats:
    size: int
    alive: int  # workers started and ready (idle or busy)
    busy: int
    queued: int  # jobs waiting for a worker
    restarts: int
    jobs: int
    handoff_seconds: float  # total time of the finished jobs outside the worker's own work
    workers: list[WorkerInfo] = field(default_factory=list)


class StreamEnded(InferenceError):
    """The worker process that held a stream's tracker stopped: the stream cannot go on."""


class Stream:
    """A live stream pinned to the worker process that holds its tracker (:meth:`ProcessPool.open_stream`)."""

    def __init__(self, ident: int, slot: WorkerSlot, key: str) -> None:
        self.id = ident
        self.slot = slot
        self.key = key  # the key it runs under: its frames count in that key's share of the workers
        self.generation = slot.generation  # the process it is pinned to
        #: why the stream can go on no more (its worker stopped), or None
        self.ended: str | None = None


class QueuedJob:
    """A job waiting for a worker, or running on one: its frames (dropped once sent), whose it is."""

    __slots__ = ("dispatched", "frames", "future", "key", "request_id", "stream")

    def __init__(
        self,
        job: AnalyzeJob | FrameJob,
        request_id: str,
        key: str,
        future: asyncio.Future[bytes],
        stream: Stream | None = None,
    ) -> None:
        self.frames = job_frames(job)
        self.request_id = request_id
        self.key = key
        self.future = future
        self.dispatched = 0.0
        self.stream = stream


class WorkerSlot:
    """One worker position: the process now in it, its socket, what it is doing."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: BaseProcess | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.pid: int | None = None
        self.state = STOPPED
        self.ticket: QueuedJob | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.ready: asyncio.Future[None] | None = None
        self.task: asyncio.Task[None] | None = None
        self.kill_reason: str | None = None
        self.jobs = 0
        self.restarts = 0
        self.failed_starts = 0
        self.generation = 0  # counts the processes started in this slot
        self.streams: set[Stream] = set()
        self.frames: collections.deque[QueuedJob] = collections.deque()  # stream frames waiting for it
