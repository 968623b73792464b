"""What travels between the server process and a worker process, over one socket pair per worker.

Every message is two frames, each a 4-byte big-endian length and its bytes: a small JSON header, then a
body of raw bytes (never pickled)::

    server → worker   job     {"mode": 0, "rotate": false, "base64": true,    the Image text or Url bytes
                               "action": "AnalyzeFace", "version": "3.0"}
                      frame   {"stream": 7, "time": 1.25, "mode": 0}          the frame's encoded image
                      end     {"stream": 7, "end": true}                      (empty)
    worker → server   ready   {"ready": true, "pid": 123}                     (empty)
                      ok      {"ok": true, "seconds": 0.031}                  the response fields, JSON
                      error   {"ok": false, "code", "type", "message",        (empty)
                               "traceback"}

A worker serves one job at a time, so replies need no id. ``seconds`` is the time the worker spent on
the job, so the server can tell the hand-off (everything but that time) from the work.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from typing import Any

from denseface import errors
from denseface.errors import DensefaceError
from denseface.rpc.envelope import ApiError
from denseface.rpc.service import AnalyzeJob
from denseface.rpc.stream_frames import FrameJob

_LENGTH = struct.Struct("!I")
MAX_FRAME = 64 * 1024 * 1024  # far above any job (10 MB body cap) or reply (5 faces of JSON)


class WireError(Exception):
    """A frame that does not parse: the peer is not a denseface worker, or it broke mid-message."""


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker, as text (set as ``__cause__`` of the error
    the server answers, so its log shows where the worker failed)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f"\n{self.text.rstrip()}"

    def __repr__(self) -> str:  # the exception the worker raised, in one line
        lines = self.text.strip().splitlines()
        return f"RemoteTraceback({lines[-1] if lines else ''!r})"


# ------------------------------------------------------------------------------------ worker side (sync)
def send_message(sock: socket.socket, header: dict[str, Any], body: bytes = b"") -> None:
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    sock.sendall(_LENGTH.pack(len(head)) + head + _LENGTH.pack(len(body)))
    if body:
        sock.sendall(body)


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    if size == 0:
        return b""
    data = sock.recv(size, socket.MSG_WAITALL)
    if len(data) == size:
        return data
    chunks = [data]
    got = len(data)
    while got < size:
        if not data:
            raise EOFError("the server closed the connection")
        data = sock.recv(size - got, socket.MSG_WAITALL)
        chunks.append(data)
        got += len(data)
    return b"".join(chunks)


def _recv_frame(sock: socket.socket) -> bytes:
    head = _recv_exactly(sock, _LENGTH.size)
    if len(head) != _LENGTH.size:
        raise EOFError("the server closed the connection")
    (size,) = _LENGTH.unpack(head)
    if size > MAX_FRAME:
        raise WireError(f"frame of {size} bytes")
    return _recv_exactly(sock, size)


def recv_job(sock: socket.socket) -> AnalyzeJob | FrameJob:
    """The next job; ``EOFError`` when the server closed its end (it stopped or died)."""
    header = _parse_header(_recv_frame(sock))
    body = _recv_frame(sock)
    if "stream" in header:
        stream = int(header["stream"])
        if header.get("end"):
            return FrameJob(stream, b"", end=True)
        return FrameJob(stream, body, time=float(header["time"]), mode=int(header["mode"]))
    return AnalyzeJob(
        body,
        base64=bool(header["base64"]),
        mode=int(header["mode"]),
        rotate=bool(header["rotate"]),
        action=str(header["action"]),
        face_model_version=str(header["version"]),
    )


def error_header(error: BaseException, traceback_text: str) -> dict[str, Any]:
    """The reply for an exception raised by a job: a ``DensefaceError`` keeps its code and class."""
    if isinstance(error, DensefaceError):
        code, message = error.code, error.message
    else:
        code, message = "InternalError", f"{type(error).__name__}: {error}"
    return {
        "ok": False,
        "code": code,
        "type": type(error).__name__,
        "message": message,
        "traceback": traceback_text,
    }


# ------------------------------------------------------------------------------------ server side (async)
def job_frames(job: AnalyzeJob | FrameJob) -> tuple[bytes, bytes]:
    """The two frames' prefix (length + header + body length) and the body, ready to write."""
    fields: dict[str, Any]
    if isinstance(job, FrameJob):
        fields = {"stream": job.stream, "end": True} if job.end else {"stream": job.stream}
        if not job.end:
            fields |= {"time": job.time, "mode": job.mode}
    else:
        fields = {"mode": job.mode, "rotate": job.rotate, "base64": job.base64}
        fields |= {"action": job.action, "version": job.face_model_version}
    head = json.dumps(fields).encode("utf-8")
    return _LENGTH.pack(len(head)) + head + _LENGTH.pack(len(job.image)), job.image


async def read_message(reader: asyncio.StreamReader) -> tuple[dict[str, Any], bytes]:
    """One header and body; ``asyncio.IncompleteReadError`` when the worker's end closed."""
    header = _parse_header(await _read_frame(reader))
    return header, await _read_frame(reader)


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    (size,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    if size > MAX_FRAME:
        raise WireError(f"frame of {size} bytes")
    return await reader.readexactly(size)


def rebuild_error(header: dict[str, Any]) -> DensefaceError:
    """The error a worker reported, as the server answers it.

    A class of :mod:`denseface.errors` comes back as that class with its message (and code); anything
    else — a bug in the worker — is ``InternalError``, whose message the caller never sees in detail.
    The worker's traceback is the ``__cause__`` either way."""
    code, message = str(header.get("code", "InternalError")), str(header.get("message", ""))
    cls = getattr(errors, str(header.get("type", "")), None)
    error: DensefaceError
    if isinstance(cls, type) and issubclass(cls, DensefaceError) and cls.__module__ == errors.__name__:
        error = cls(message)
        error.code = code
    else:
        error = ApiError(code) if code == "InternalError" else DensefaceError(message)
        error.code = code
    error.__cause__ = RemoteTraceback(str(header.get("traceback") or message))
    return error


def _parse_header(frame: bytes) -> dict[str, Any]:
    try:
        header = json.loads(frame)
    except ValueError as exc:
        raise WireError("a header that is not JSON") from exc
    if not isinstance(header, dict):
        raise WireError("a header that is not a JSON object")
    return header
