"""The connection limits at the server's edge: uvicorn's h11 protocol with the deadlines and caps a
server facing the network needs, configured by :class:`ConnectionLimits`.

uvicorn gives a keep-alive timeout (``timeout_keep_alive``) and h11 a cap on the request line plus
headers (``h11_max_incomplete_event_size``); it has no deadline for receiving a request (a connection
that sends nothing, or one byte every few seconds, is held forever), its ``limit_concurrency`` answers
*every* request ``503`` once that many connections are open (so idle ones lock out real ones), and a
request line or headers over the cap get a plain-text ``400``. This subclass adds, per connection:

* **a header deadline** (``header_timeout``): from the connection's start, or from the first byte of
  its next request, until its headers are complete; then the connection is closed;
* **a body deadline** (``body_timeout``): from the headers until the whole body is received (also a
  body still arriving after an early answer, which the server reads and drops); then it is closed;
* **an open-connection cap** (``max_connections``): a new connection over the cap closes the connection
  that has been idle longest (no request in progress), or, if every one is busy, is itself closed;
* **a JSON answer** for a request line or headers over ``max_header_bytes``
  (``RequestSizeLimitExceeded``, HTTP 200 like every API answer, so the official SDKs report it) or
  for any other malformed HTTP (``InvalidRequest``, HTTP 400), each with a RequestId.

Nothing here reads a body into memory: uvicorn hands the body to the app as it arrives and stops reading
the socket while ~64 KiB wait unread. Everything else (keys, sizes, rates) is checked by the app.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import json
import logging
import re
import resource
import time
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from denseface.rpc.envelope import ApiError, envelope_for_error, message_for, new_request_id

log = logging.getLogger(__name__)
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (glibc malloc.h)
#: the language a request asked for, found in what was received of it (X-TC-Language or v1's Language)
_EN_US = re.compile(rb"(?i)(?:\nx-tc-language:[ \t]*en-us|[?&]language=en-us)")


@dataclass(frozen=True)
class ConnectionLimits:
    """Each default is far above what an official SDK needs (they send a request at once after
    connecting, and drop an idle keep-alive connection the server closed)."""

    max_connections: int = 2048
    max_header_bytes: int = 64 * 1024  # the request line plus headers (a v1 GET's query is ≤ 32 KB)
    header_timeout: float = 10.0
    body_timeout: float = 30.0  # a 10 MB body at 3 Mbit/s
    keepalive_timeout: float = 5.0  # uvicorn's default; the SDKs reconnect when it closes


class EdgeProtocol(H11Protocol):
    """uvicorn's h11 protocol plus :class:`ConnectionLimits` (``limits`` is set by :func:`protocol_class`)."""

    limits = ConnectionLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_kind = ""
        self._idle_since = time.monotonic()

    # ------------------------------------------------------------------------------------- connection
    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # type: ignore[arg-type]
        if len(self.connections) > self.limits.max_connections and not self._evict_one():
            log.warning("open-connection cap (%d) reached: refusing one", self.limits.max_connections)
            self.transport.close()
            return
        self._arm("header", self.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE and self._timer_kind != "header":
            self._arm("header", self.limits.header_timeout)  # the first byte of a new request
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # arms uvicorn's keep-alive timer
        self._idle_since = time.monotonic()
        self._follow()

    def _follow(self) -> None:
        """Move to the deadline of the request's current phase."""
        theirs = self.conn.their_state
        if theirs is h11.SEND_BODY:
            if self._timer_kind != "body":
                self._arm("body", self.limits.body_timeout)
        elif theirs is not h11.IDLE or self._timer_kind == "body":
            self._disarm()  # received in full (or closed), or the next request has not begun

    def _arm(self, kind: str, seconds: float) -> None:
        self._disarm()
        self._timer_kind = kind
        self._timer = self.loop.call_later(seconds, self._expired, kind)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_kind = None, ""

    def _expired(self, kind: str) -> None:
        self._timer, self._timer_kind = None, ""
        if kind == "header" and self.conn.their_state is h11.IDLE and not self._request_started():
            self._unset_keepalive_if_required()  # an idle keep-alive connection: uvicorn's timer owns it
        if not self.transport.is_closing():
            log.debug("closing a connection from %s: no complete %s in time", self.client, kind)
            self.transport.close()

    def _request_started(self) -> bool:
        return bool(self.conn.trailing_data[0])

    def _idle(self) -> bool:
        """No request in progress: nothing received of the next one, the last one answered."""
        if self.conn.their_state is not h11.IDLE or self._request_started():
            return False
        return self.cycle is None or self.cycle.response_complete

    def _evict_one(self) -> bool:
        idle = [c for c in self.connections if isinstance(c, EdgeProtocol) and c is not self and c._idle()]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c._idle_since)
        oldest._disarm()
        oldest._unset_keepalive_if_required()
        oldest.transport.close()
        return True

    # ---------------------------------------------------------------------------------- malformed HTTP
    def send_400_response(self, msg: str) -> None:
        received = self.conn.trailing_data[0]
        too_large = len(received) > self.limits.max_header_bytes
        language = "en-US" if _EN_US.search(received[: self.limits.max_header_bytes]) else "zh-CN"
        code, status = ("RequestSizeLimitExceeded", 200) if too_large else ("InvalidRequest", 400)
        request_id = new_request_id()
        malformed = message_for("InvalidRequest.MalformedHttp", language)
        error = ApiError(code) if too_large else ApiError(code, malformed)
        body = json.dumps(envelope_for_error(error, request_id, language), ensure_ascii=False).encode("utf-8")
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode("ascii")),
            (b"x-request-id", request_id.encode("ascii")),
            (b"connection", b"close"),
        ]
        log.info("%s %s from %s (%s)", request_id, code, self.client, msg)
        self._disarm()
        reason = b"OK" if status == 200 else b"Bad Request"
        for event in (h11.Response(status_code=status, headers=headers, reason=reason), h11.Data(data=body)):
            self.transport.write(self.conn.send(event) or b"")
        self.transport.write(self.conn.send(h11.EndOfMessage()) or b"")
        self.transport.close()


def protocol_class(limits: ConnectionLimits) -> type[EdgeProtocol]:
    """The protocol class to give uvicorn (``http=``) for ``limits``."""
    return type("EdgeProtocol", (EdgeProtocol,), {"limits": limits})


def uvicorn_options(limits: ConnectionLimits) -> dict[str, Any]:
    """The uvicorn settings that go with :func:`protocol_class`."""
    return {
        "http": protocol_class(limits),
        "h11_max_incomplete_event_size": limits.max_header_bytes,
        "timeout_keep_alive": max(1, round(limits.keepalive_timeout)),
        "backlog": max(2048, limits.max_connections),
    }


def return_large_buffers() -> bool:
    """Have glibc's malloc give every buffer of 256 KiB or more its own mapping, returned to the system
    when freed. (By default glibc raises that threshold as large buffers are freed, up to 32 MB, and then
    serves request bodies from its heap, which fragments and stays resident: a flood of megabyte
    requests left the server ~80 MB larger.) ``False`` where the C library is not glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, 256 * 1024))
    except (OSError, AttributeError):
        return False


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's open-file limit (soft, up to the hard limit) to ``wanted``; the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit to %d: %s", target, exc)
    return int(soft)


__all__ = [
    "ConnectionLimits",
    "EdgeProtocol",
    "protocol_class",
    "raise_fd_limit",
    "return_large_buffers",
    "uvicorn_options",
]
