"""``GET /v1/stream``: live frames over a WebSocket, tracked and smoothed as ``denseface video`` does.

Connection (docs/stream.md has the client's side):

1. **Admission, before any frame is read.** The query string is checked as a v1 GET signature over
   ``/v1/stream`` (:func:`denseface.rpc.stream.verify_stream_query`: the API's keys, timestamp window and
   codes); then the key's state, allowed actions and quota (:meth:`denseface.rpc.accounts.Gate.check`),
   then room (at most :data:`MAX_STREAMS_PER_WORKER` streams per worker). A refusal is accepted only to
   say why: one text message ``{"Error": {"Code", "Message"}, "RequestId"}``, then close code 1008 with
   the code as reason. Nothing the client sent is read.
2. **Frames.** Every binary message is one encoded image (frame ``i``, counting from 0). Its time is the
   server's receipt clock (seconds since the connection opened) unless a text message ``{"Time": s}``
   came just before it (seconds, increasing along the stream). Each answered frame costs one call of
   the key (the API's rate limit and quota: one successful frame = one call) and gets one text message::

       {"Frame": i, "DenseFaceShapeSet": [{"X", "Y", "Width", "Height", <14 regions>, "TrackId"}, ...],
        "RequestId": "...", "Skipped": [j, ...]}

   or ``{"Frame": i, "Error": {"Code", "Message"}, "RequestId"}`` for a frame that cannot be used (the
   API's codes: corrupt, too large, rate or quota) — the stream goes on.
3. **Latest wins.** One frame runs at a time; a frame that arrives while another runs replaces the one
   waiting (if any), which is never analysed: the next frame analysed lists it in its answer's
   ``Skipped`` (omitted when empty), so every frame is answered or listed once, in order (the first
   :data:`MAX_SKIPPED_LISTED`; the rest counted in ``SkippedMore``). The server holds at most one
   waiting frame per connection, and keeps reading (and dropping) while an answer cannot be sent.
4. **State.** The connection's tracker lives in the worker process its frames run in
   (:meth:`denseface.server.workers.ProcessPool.open_stream`) and is freed when the connection ends. If
   that worker stops, the stream ends: ``{"Error": {"Code": "FailedOperation.ServerError", …}}`` then
   close code 1011; other streams and the API go on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge
from starlette.websockets import WebSocket, WebSocketDisconnect

from denseface.errors import DensefaceError
from denseface.rpc.accounts import Ticket
from denseface.rpc.envelope import ApiError, envelope_for_error, new_request_id, normalize_language
from denseface.rpc.replay import check_replay
from denseface.rpc.stream import STREAM_ACTION, StreamCall, verify_stream_query
from denseface.server.metrics import key_label
from denseface.server.pool_records import Stream, StreamEnded
from denseface.server.workers import ProcessPool

if TYPE_CHECKING:
    from denseface.rpc.credentials import Credential
    from denseface.server.app import ApiApp

log = logging.getLogger(__name__)
MAX_STREAMS_PER_WORKER = 8
#: uvicorn's ``ws_max_size``: a larger message closes the connection (1009); frames up to it that exceed
#: the API's 5 MB image limit get ``FailedOperation.ImageSizeExceed`` and the stream goes on
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
MAX_SKIPPED_LISTED = 256
MAX_TEXT_MESSAGE = 256  # characters of a {"Time": seconds} message
POLICY_VIOLATION = 1008
SERVER_ERROR_CLOSE = 1011


@dataclass(frozen=True)
class _Frame:
    index: int
    image: bytes
    time: float
    error: ApiError | None = None


class StreamEndpoint:
    """The WebSocket route: admission, then one :class:`_Session` per connection."""

    def __init__(self, state: ApiApp) -> None:
        self.state = state
        self.open = 0
        registry = state.metrics.registry
        self.frames = Counter(
            "denseface_stream_frames", "Stream frames by result code", ["code"], registry=registry
        )
        self.streams = Gauge("denseface_streams_open", "Live streams", registry=registry)

    async def handle(self, websocket: WebSocket) -> None:
        request_id = new_request_id()
        language = "zh-CN"
        try:
            call, credential, pool = await self._admit(websocket)
        except ApiError as error:
            await _refuse(websocket, error, request_id, error.language or language)
            return
        stream = pool.open_stream(credential.secret_id)
        self.open += 1
        self.streams.inc()
        log.info(
            "%s stream %d opened (key %s, Mode %d)",
            request_id,
            stream.id,
            key_label(call.secret_id),
            call.mode,
        )
        try:
            await websocket.accept()
            await _Session(self, websocket, call, credential, pool, stream).run()
        finally:
            pool.close_stream(stream)
            self.open -= 1
            self.streams.dec()
            log.info("%s stream %d closed", request_id, stream.id)

    async def _admit(self, websocket: WebSocket) -> tuple[StreamCall, Credential, ProcessPool]:
        state = self.state
        call = verify_stream_query(
            websocket.scope["query_string"].decode("latin-1"),
            websocket.headers.get("host", ""),
            now=time.time(),
            credentials=state.credentials,
        )
        credential = state.credentials.get(call.secret_id)
        if credential is None:  # the keys file changed since the signature was checked
            raise ApiError("AuthFailure.SecretIdNotFound", language=call.language)
        if call.call is not None:  # the same signed query twice is a replay, as for the API
            await check_replay(state.gate.store, call.call, now=time.time())
        try:
            await state.gate.check(credential, call.action)
            pool = state.pool
            if pool is None or self.open >= pool.size * MAX_STREAMS_PER_WORKER:
                raise ApiError("RequestLimitExceeded", detail="too many live streams; retry later")
        except ApiError as error:
            error.language = call.language
            raise
        return call, credential, pool


async def _refuse(websocket: WebSocket, error: ApiError, request_id: str, language: str) -> None:
    body = envelope_for_error(error, request_id, language)["Response"]
    log.info("%s stream refused: %s", request_id, error.code)
    await websocket.accept()
    await websocket.send_text(json.dumps(body, ensure_ascii=False))
    await websocket.close(POLICY_VIOLATION, reason=error.code)


class _Session:
    """One connection: a receiving task (latest frame wins) and the answering loop."""

    def __init__(
        self,
        endpoint: StreamEndpoint,
        websocket: WebSocket,
        call: StreamCall,
        credential: Credential,
        pool: ProcessPool,
        stream: Stream,
    ) -> None:
        self.endpoint, self.websocket, self.call, self.credential = endpoint, websocket, call, credential
        self.pool, self.stream = pool, stream
        self.language = normalize_language(call.language) or "zh-CN"
        self.started = time.monotonic()
        self.waiting: _Frame | None = None
        self.skipped: list[int] = []
        self.skipped_more = 0
        self.wake = asyncio.Event()
        self.closed = False
        self.received = 0
        self.given_time: float | ApiError | None = None
        self.last_time = -math.inf

    async def run(self) -> None:
        receiver = asyncio.create_task(self._receive())
        try:
            await self._answer_loop()
        except StreamEnded as ended:
            await self._end(ended)
        except (WebSocketDisconnect, OSError):  # the client is gone
            pass
        except Exception as exc:
            if not self.closed:  # not a send to a client that just left: a bug
                log.exception("stream %d failed", self.stream.id)
                await self._end(ApiError("InternalError", detail=type(exc).__name__))
        finally:
            receiver.cancel()
            await asyncio.gather(receiver, return_exceptions=True)

    # -- receiving -------------------------------------------------------------------------------
    async def _receive(self) -> None:
        try:
            while True:
                message = await self.websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                data, text = message.get("bytes"), message.get("text")
                if data is not None:
                    self._frame(data)
                    await asyncio.sleep(0)  # an idle answering loop takes it before the next one arrives
                elif text is not None:
                    self.given_time = _time_message(text)
        finally:
            self.closed = True
            self.wake.set()

    def _frame(self, data: bytes) -> None:
        index, self.received = self.received, self.received + 1
        given, self.given_time = self.given_time, None
        error = given if isinstance(given, ApiError) else None
        at = given if isinstance(given, float) else time.monotonic() - self.started
        if self.waiting is not None:  # latest wins: the waiting frame is never analysed
            if len(self.skipped) < MAX_SKIPPED_LISTED:
                self.skipped.append(self.waiting.index)
            else:
                self.skipped_more += 1
        self.waiting = _Frame(index, data, at, error)
        self.wake.set()

    # -- answering -------------------------------------------------------------------------------
    async def _answer_loop(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            frame, self.waiting = self.waiting, None
            if frame is None:
                if self.closed:
                    return
                continue
            skipped, self.skipped = self.skipped, []
            more, self.skipped_more = self.skipped_more, 0
            answer = await self._answer(frame)
            if skipped:
                answer += ',"Skipped":' + json.dumps(skipped, separators=(",", ":"))
            if more:
                answer += f',"SkippedMore":{more}'
            await self.websocket.send_text(answer + "}")

    async def _answer(self, frame: _Frame) -> str:
        """The answer to one frame, without its closing brace."""
        request_id = new_request_id()
        head = f'{{"Frame":{frame.index},"RequestId":"{request_id}",'
        state, code = self.endpoint.state, "OK"
        try:
            fields = await self._run(frame, request_id)
            return head + fields[1:-1].decode("utf-8")
        except (ApiError, DensefaceError) as error:
            if isinstance(error, StreamEnded):
                code = error.code
                raise
            code = error.code
            if code in ("FailedOperation.ServerError", "InternalError"):
                log.error("%s stream %d frame %d: %s", request_id, self.stream.id, frame.index, error)
            body = envelope_for_error(error, request_id, self.language)["Response"]["Error"]
            return head + '"Error":' + json.dumps(body, ensure_ascii=False)
        finally:
            self.endpoint.frames.labels(code).inc()
            state.metrics.key_calls.labels(self.credential.secret_id, STREAM_ACTION, code).inc()

    async def _run(self, frame: _Frame, request_id: str) -> bytes:
        if frame.error is not None:
            raise frame.error
        if not frame.time > self.last_time:
            raise ApiError("InvalidParameterValue", detail=f"Time {frame.time:g} (times must increase)")
        state = self.endpoint.state
        ticket = await state.gate.admit(self.credential, STREAM_ACTION, request_id)
        try:
            work = self.pool.run_frame(self.stream, frame.image, frame.time, self.call.mode, request_id)
            fields = await asyncio.wait_for(work, state.deadline)
        except asyncio.TimeoutError:
            await self._settle(ticket, "FailedOperation.RequestTimeout")
            raise ApiError("FailedOperation.RequestTimeout", detail=f"{state.deadline:g} s") from None
        except BaseException as error:
            await self._settle(ticket, error.code if isinstance(error, DensefaceError) else "InternalError")
            raise
        self.last_time = frame.time
        await self._settle(ticket, "OK")
        return fields

    async def _settle(self, ticket: Ticket, code: str) -> None:
        await self.endpoint.state.gate.settle(ticket, code)  # a success that cannot be counted raises

    async def _end(self, ended: DensefaceError) -> None:
        """Say why the stream cannot go on, then close it (1011)."""
        log.error("stream %d ended: %s", self.stream.id, ended.message)
        body = envelope_for_error(ended, new_request_id(), self.language)["Response"]
        try:
            await self.websocket.send_text(json.dumps(body, ensure_ascii=False))
            await self.websocket.close(SERVER_ERROR_CLOSE, reason=ended.code)
        except (WebSocketDisconnect, OSError, RuntimeError):
            pass


def _time_message(text: str) -> float | ApiError:
    """The time a ``{"Time": seconds}`` text message gives the next frame, or the error that frame gets."""
    if len(text) > MAX_TEXT_MESSAGE:  # never parsed: a Time message is a few bytes
        return ApiError("InvalidParameter", detail='a text message must be {"Time": seconds}')
    try:
        value: Any = json.loads(text)
    except ValueError:
        return ApiError("InvalidParameter", detail='a text message must be {"Time": seconds}')
    given = value.get("Time") if isinstance(value, dict) and set(value) == {"Time"} else None
    if isinstance(given, bool) or not isinstance(given, (int, float)) or not math.isfinite(given):
        return ApiError("InvalidParameter", detail='a text message must be {"Time": seconds}')
    return float(given)


__all__ = ["MAX_MESSAGE_BYTES", "MAX_STREAMS_PER_WORKER", "StreamEndpoint"]
