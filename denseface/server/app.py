"""The ASGI app: the Tencent-compatible API at ``/``, the live stream at ``/v1/stream`` (a WebSocket,
:mod:`denseface.server.stream`), the page, ``/healthz`` (liveness), ``/readyz`` (readiness) and
``/metrics``.

``GET /`` with no query string and no ``Authorization`` header is the page; every other request to
``/`` is an API call. Every API answer is HTTP 200 with ``Content-Type: application/json`` (exactly:
the official SDK ignores errors otherwise) and a ``RequestId``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from denseface import __version__
from denseface.errors import DensefaceError
from denseface.rpc.accounts import GATE_ERROR_CODES, AccountStore, Gate, StoreUnavailable, Ticket
from denseface.rpc.accounts.sqlite import SqliteStore
from denseface.rpc.catalog import IMPLEMENTED_ACTIONS
from denseface.rpc.envelope import success_envelope_json
from denseface.rpc.protocol import (
    MAX_TC3_BODY_BYTES,
    MAX_V1_BODY_BYTES,
    PROTOCOL_ERROR_CODES,
    ApiCall,
    ApiError,
    CredentialLookup,
    envelope_for_error,
    message_for,
    new_request_id,
    normalize_language,
    parse_request,
)
from denseface.rpc.service import SERVER_ERROR, ActionService
from denseface.server.stream import StreamEndpoint
from denseface.server.workers import ProcessPool

log = logging.getLogger(__name__)
STATIC_DIR = resources.files("denseface.server").joinpath("static")
MAX_IN_FLIGHT_PER_WORKER = 32  # API requests admitted at once (bounds memory: each holds ≤ 10 MB of body)
#: Every ``Error.Code`` this server can answer (the README's error table lists each, with its trigger).
ERROR_CODES = PROTOCOL_ERROR_CODES | {
    # the action's parameters (denseface.rpc.actions)
    "UnknownParameter",
    "InvalidParameter.InvalidParameter",
    "InvalidParameterValue",
    "InvalidParameterValue.FaceModelVersionIllegal",
    "InvalidParameterValue.ImageEmpty",
    # the image (denseface.rpc.image_input, denseface.rpc.fetch) and the result (denseface.rpc.service)
    "InvalidParameterValue.UrlIllegal",
    "FailedOperation.ImageDownloadError",
    "FailedOperation.ImageSizeExceed",
    "FailedOperation.ImageDecodeFailed",
    "FailedOperation.ImageResolutionExceed",
    "FailedOperation.ImageResolutionTooSmall",
    "InvalidParameterValue.NoFaceInPhoto",
    "FailedOperation.FaceSizeTooSmall",
    SERVER_ERROR,
    # this module: the deadline, a bug, a caller that hung up mid-body (the answer reaches nobody)
    "FailedOperation.RequestTimeout",
    "InternalError",
    "InvalidRequest",
}
ERROR_CODES |= GATE_ERROR_CODES  # the account checks (denseface.rpc.accounts.gate)


class Metrics:
    def __init__(self, pool: Callable[[], ProcessPool | None], gate: Gate) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_WorkerCollector(pool))
        self.registry.register(_StoreCollector(gate))
        self.requests = Counter(
            "denseface_requests",
            "API requests by action and result code",
            ["action", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "denseface_request_seconds",
            "API request latency",
            ["action"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        self.in_flight = Gauge("denseface_in_flight", "API requests being handled", registry=self.registry)
        self.key_calls = Counter(
            "denseface_key_calls",
            "Authenticated API calls by SecretId, action and result code (this replica)",
            ["secret_id", "action", "code"],
            registry=self.registry,
        )


class _WorkerCollector(Collector):
    """The worker processes' state, read from the pool at every scrape (nothing while none runs)."""

    def __init__(self, pool: Callable[[], ProcessPool | None]) -> None:
        self._pool = pool

    def collect(self) -> Iterator[Metric]:
        pool = self._pool()
        if pool is None:
            return
        stats = pool.stats()
        yield GaugeMetricFamily("denseface_workers", "Worker processes configured", value=stats.size)
        yield GaugeMetricFamily(
            "denseface_workers_alive", "Worker processes up with their models loaded", value=stats.alive
        )
        yield GaugeMetricFamily("denseface_workers_busy", "Worker processes running a job", value=stats.busy)
        yield GaugeMetricFamily(
            "denseface_jobs_queued", "Jobs waiting for an idle worker", value=stats.queued
        )
        yield CounterMetricFamily(
            "denseface_worker_restarts",
            "Worker processes started to replace one that stopped",
            stats.restarts,
        )
        yield CounterMetricFamily("denseface_worker_jobs", "Jobs the worker processes finished", stats.jobs)
        yield CounterMetricFamily(
            "denseface_worker_handoff_seconds",
            "Time of the finished jobs spent outside the workers' own work (sending, waking, receiving)",
            stats.handoff_seconds,
        )
        pids = GaugeMetricFamily(
            "denseface_worker_pid", "PID of the process in each worker slot", labels=["slot", "state"]
        )
        for worker in stats.workers:
            pids.add_metric([str(worker.slot), worker.state], worker.pid or 0)
        yield pids


class _StoreCollector(Collector):
    """The time this replica waited for the usage store (admit, settle, record): the metering cost."""

    def __init__(self, gate: Gate) -> None:
        self._gate = gate

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "denseface_store_seconds",
            f"Wall time spent waiting for the usage store ({self._gate.store.name})",
            self._gate.store_seconds,
        )
        yield CounterMetricFamily(
            "denseface_store_calls",
            "Calls to the usage store (admit, settle, record)",
            self._gate.store_calls,
        )


class ApiApp:
    """Request handling state: keys, the account gate (state, actions, rate, quota, usage over one
    store), service, worker pool, metrics. ``accounts`` defaults to an in-memory SQLite store."""

    def __init__(
        self,
        *,
        credentials: CredentialLookup,
        service: ActionService,
        pool_factory: Callable[[], ProcessPool],
        default_qps: float | None,
        deadline: float,
        accounts: AccountStore | None = None,
    ) -> None:
        self.credentials = credentials
        self.service = service
        self.pool_factory = pool_factory
        self.pool: ProcessPool | None = None
        store = accounts if accounts is not None else SqliteStore(":memory:", hold=deadline + 60)
        self.gate = Gate(store, default_qps)
        self.deadline = deadline
        self.metrics = Metrics(lambda: self.pool, self.gate)
        self._in_flight = 0

    async def _process(self, request: Request, pool: ProcessPool, request_id: str) -> tuple[ApiCall, bytes]:
        body = await _read_body(request)
        call = parse_request(
            request.method,
            request.scope["query_string"].decode("latin-1"),
            dict(request.headers.items()),
            body,
            now=time.time(),
            credentials=self.credentials,
        )
        credential = self.credentials.get(call.secret_id)
        if credential is None:  # the keys file changed since the signature was checked
            raise ApiError("AuthFailure.SecretIdNotFound", language=call.language)
        try:
            ticket = await self.gate.admit(credential, call.action, request_id)
        except ApiError as error:
            raise _Answered(error, call) from error
        try:
            run = functools.partial(pool.run, request_id=request_id)
            fields = await self.service.handle(call, run, from_query=call.from_query)
        except BaseException as error:  # settled with its code, so it consumes no quota
            await self._settle(ticket, call, _outcome(error))
            if isinstance(error, DensefaceError):  # rendered in the call's language by `api`
                raise _Answered(error, call) from error
            raise
        await self._settle(ticket, call, "OK")
        return call, fields

    async def _settle(self, ticket: Ticket, call: ApiCall, code: str) -> None:
        try:
            await self.gate.settle(ticket, code)
        except ApiError as error:  # a success that could not be counted is not answered as one
            raise _Answered(error, call) from error

    async def api(self, request: Request) -> Response:
        request_id = new_request_id()
        started = time.perf_counter()
        headers = request.headers
        language = normalize_language(headers.get("x-tc-language")) or "zh-CN"
        action = headers.get("x-tc-action") or request.query_params.get("Action") or "-"
        code = "OK"
        secret_id: str | None = None
        self._in_flight += 1
        self.metrics.in_flight.inc()
        try:
            if self.pool is None or self._in_flight > self.pool.size * MAX_IN_FLIGHT_PER_WORKER:
                raise ApiError("RequestLimitExceeded", detail="server busy")
            # one deadline for everything: reading the body, downloading a Url, queueing, inference
            work = self._process(request, self.pool, request_id)
            call, fields = await asyncio.wait_for(work, self.deadline)
            language, action, secret_id = call.language, call.action, call.secret_id
            payload: dict[str, Any] | bytes = success_envelope_json(fields, request_id)
        except _Answered as answered:  # an error after authentication: its call is known
            language, action = answered.call.language, answered.call.action
            secret_id = answered.call.secret_id
            code = answered.error.code
            if code in (SERVER_ERROR, "InternalError"):  # the operator should see why
                cause = answered.error.__cause__ or answered.error
                log.error("request %s: %s: %r", request_id, code, cause, exc_info=cause)
            payload = envelope_for_error(answered.error, request_id, language)
        except ApiError as error:  # protocol errors know the language the request asked for
            code = error.code
            payload = envelope_for_error(error, request_id, error.language or language)
        except ClientDisconnect:  # the caller hung up while sending: not a server error, nobody reads this
            code = "ClientDisconnect"
            payload = envelope_for_error(ApiError("InvalidRequest", detail="client disconnected"), request_id)
        except asyncio.TimeoutError:
            code = "FailedOperation.RequestTimeout"
            payload = envelope_for_error(ApiError(code, detail=f"{self.deadline:g} s"), request_id, language)
        except Exception:
            log.exception("request %s failed", request_id)
            code = "InternalError"
            payload = envelope_for_error(ApiError(code), request_id, language)
        finally:
            self._in_flight -= 1
            self.metrics.in_flight.dec()
        elapsed = time.perf_counter() - started
        action_label = action if action in IMPLEMENTED_ACTIONS else "other"
        self.metrics.requests.labels(action_label, code).inc()
        if secret_id is not None:
            self.metrics.key_calls.labels(secret_id, action_label, code).inc()
        self.metrics.latency.labels(action_label).observe(elapsed)
        log.info("%s %s %s %.1f ms", request_id, action_label, code, elapsed * 1000)
        extra = {"X-Request-Id": request_id}
        if isinstance(payload, bytes):  # a success: the worker's JSON, spliced into the envelope
            return Response(payload, media_type="application/json", headers=extra)
        return JSONResponse(payload, media_type="application/json", headers=extra)


class _Answered(Exception):
    """A library or action error raised after the request was authenticated."""

    def __init__(self, error: DensefaceError, call: ApiCall) -> None:
        super().__init__(error.message)
        self.error = error
        self.call = call


def _outcome(error: BaseException) -> str:
    """The code a call that raised ``error`` is answered with (for its usage row)."""
    if isinstance(error, DensefaceError):
        return error.code
    if isinstance(error, asyncio.CancelledError):  # the deadline passed (asyncio.wait_for)
        return "FailedOperation.RequestTimeout"
    return "InternalError"


async def _read_body(request: Request) -> bytes:
    """The body, read with a cap: never buffered past the limit of the request's form."""
    is_form = request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
    limit = MAX_V1_BODY_BYTES if is_form and "authorization" not in request.headers else MAX_TC3_BODY_BYTES
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError("RequestSizeLimitExceeded", detail=f"{limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError("RequestSizeLimitExceeded", detail=f"{limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(state: ApiApp) -> Starlette:
    async def root(request: Request) -> Response:
        if request.method == "GET" and not request.url.query and "authorization" not in request.headers:
            return FileResponse(str(STATIC_DIR.joinpath("index.html")), media_type="text/html")
        return await state.api(request)

    async def healthz(request: Request) -> Response:
        if state.pool is None:
            return JSONResponse({"status": "starting", "version": __version__}, status_code=503)
        stats = state.pool.stats()
        status = "ok" if stats.alive == stats.size else "degraded" if stats.alive else "unavailable"
        body = {
            "status": status,
            "version": __version__,
            "workers": stats.size,
            "workers_alive": stats.alive,
            "workers_busy": stats.busy,
            "worker_restarts": stats.restarts,
            "jobs_queued": stats.queued,
            "worker_processes": [dataclasses.asdict(worker) for worker in stats.workers],
        }
        return JSONResponse(body, status_code=200 if stats.alive else 503)

    async def readyz(request: Request) -> Response:
        """Readiness (``/healthz`` is liveness): every worker up and the usage store answering. Not
        ready while Redis is unreachable, so a load balancer sends calls to replicas that can count
        them; the process itself is fine (liveness stays 200) and recovers when Redis does."""
        pool = state.pool
        if pool is None:
            return JSONResponse({"status": "starting"}, status_code=503)
        stats = pool.stats()
        if stats.alive < stats.size:
            return JSONResponse({"status": "workers starting"}, status_code=503)
        try:
            await state.gate.store.ping()
        except StoreUnavailable:
            return JSONResponse({"status": "usage store unavailable"}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await state.gate.store.start()
        except StoreUnavailable as exc:  # calls answer UnknownStatus until it answers
            log.error("usage store unavailable at start: %s", exc)
        pool = state.pool_factory()
        await pool.start()  # every worker has loaded its models
        state.pool = pool
        log.info("ready: %d inference worker process(es)", pool.size)
        try:
            yield
        finally:
            state.pool = None
            await pool.close()
            await state.gate.store.close()

    async def not_found(request: Request, exc: Exception) -> Response:
        language = normalize_language(request.headers.get("x-tc-language")) or "zh-CN"
        # the code is UnsupportedProtocol; the message (its own entry in messages.json) names the path
        message = message_for("UnsupportedProtocol.UnknownPath", language, request.url.path)
        envelope = envelope_for_error(ApiError("UnsupportedProtocol", message), new_request_id())
        return JSONResponse(envelope, status_code=404, media_type="application/json")

    async def other_method(request: Request, exc: Exception) -> Response:
        if request.url.path == "/":  # an API call with a method Tencent does not serve
            return await state.api(request)
        envelope = envelope_for_error(
            ApiError("UnsupportedProtocol", detail=request.method), new_request_id()
        )
        return JSONResponse(envelope, status_code=405, media_type="application/json")

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
    routes = [
        Route("/", root, methods=methods),  # other methods reach `other_method` (UnsupportedProtocol)
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        WebSocketRoute("/v1/stream", StreamEndpoint(state).handle),  # live frames (docs/stream.md)
        Mount("/static", app=StaticFiles(directory=str(STATIC_DIR)), name="static"),
    ]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: not_found, 405: other_method})
