"""The ASGI app: the Tencent-compatible API at ``/``, the live stream at ``/v1/stream`` (a WebSocket,
:mod:`denseface.server.stream`), the page, ``/healthz`` (liveness), ``/readyz`` (readiness) and
``/metrics``.

``GET /`` with no query string and no ``Authorization`` header is the page; every other request to
``/`` is an API call (:mod:`denseface.server.calls`). Every API answer is HTTP 200 with
``Content-Type: application/json`` (exactly: the official SDK ignores errors otherwise) and a
``RequestId``.

What a stranger sees: ``/healthz`` says ``ok`` (200) or not (503) and nothing more; ``/metrics`` and
the detailed ``/healthz`` (workers, PIDs, version) need ``Authorization: Bearer <metrics token>``
(``DENSEFACE_METRICS_TOKEN``; without one ``/metrics`` is off). Every response carries
``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``, ``Referrer-Policy: no-referrer`` and,
the page, a Content-Security-Policy that allows only its own scripts and styles. With an allow-list of
Host names (``DENSEFACE_ALLOWED_HOSTS``) any other Host is answered 421 (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from denseface import __version__
from denseface.rpc.accounts import GATE_ERROR_CODES, StoreUnavailable
from denseface.rpc.protocol import (
    PROTOCOL_ERROR_CODES,
    ApiError,
    envelope_for_error,
    message_for,
    new_request_id,
    normalize_language,
)
from denseface.rpc.replay import REPLAY_CODE
from denseface.rpc.service import SERVER_ERROR
from denseface.server.calls import MAX_IN_FLIGHT_PER_WORKER, ApiApp
from denseface.server.guards import IP_LIMITED
from denseface.server.stream import StreamEndpoint

log = logging.getLogger(__name__)
STATIC_DIR = resources.files("denseface.server").joinpath("static")
#: the page's own scripts, styles and API calls only; pictures also from a Url the user gives or a file
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data: http: https:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", PAGE_POLICY.encode("ascii")),
]
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
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
    # the server's edge (denseface.server.guards, .edge) and the replay check (denseface.rpc.replay)
    IP_LIMITED,
    REPLAY_CODE,
}
ERROR_CODES |= GATE_ERROR_CODES  # the account checks (denseface.rpc.accounts.gate)


class EdgeHeaders:
    """ASGI middleware: the security headers on every response; with ``allowed_hosts``, a Host not in
    the list (exact name, or ``.example.com`` for its subdomains; the port is ignored) gets 421."""

    def __init__(self, app: Any, allowed_hosts: tuple[str, ...] = ()) -> None:
        self.app = app
        self.allowed = tuple(host.lower() for host in allowed_hosts)

    def _host_allowed(self, scope: Scope) -> bool:
        host = next((v for k, v in scope.get("headers", []) if k == b"host"), b"").decode("latin-1")
        name = host.strip().lower()
        name = name[: name.rindex(":")] if ":" in name and not name.endswith("]") else name
        return any(name == a or (a.startswith(".") and name.endswith(a)) for a in self.allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and self.allowed and not self._host_allowed(scope):
            await receive()  # the handshake's websocket.connect; closing now answers the upgrade 403
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.allowed and not self._host_allowed(scope):
            error = ApiError("InvalidRequest", message_for("InvalidRequest.Host", "en-US"))
            envelope = envelope_for_error(error, new_request_id())
            response = JSONResponse(envelope, status_code=421, media_type="application/json")
            await response(scope, receive, self._secured(send))
            return
        await self.app(scope, receive, self._secured(send))

    @staticmethod
    def _secured(send: Send) -> Send:
        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        return secured


def _bearer_ok(request: Request, token: str | None) -> bool:
    if not token:
        return False
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def create_app(
    state: ApiApp, *, metrics_token: str | None = None, allowed_hosts: tuple[str, ...] = ()
) -> Any:
    async def root(request: Request) -> Response:
        if request.method == "GET" and not request.url.query and "authorization" not in request.headers:
            return FileResponse(str(STATIC_DIR.joinpath("index.html")), media_type="text/html")
        return await state.api(request)

    async def healthz(request: Request) -> Response:
        if state.pool is None:
            return JSONResponse({"status": "starting"}, status_code=503)
        stats = state.pool.stats()
        status = "ok" if stats.alive == stats.size else "degraded" if stats.alive else "unavailable"
        code = 200 if stats.alive else 503
        if not _bearer_ok(request, metrics_token):  # a stranger learns up or down, nothing more
            return JSONResponse({"status": status}, status_code=code)
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
        return JSONResponse(body, status_code=code)

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
        if not _bearer_ok(request, metrics_token):
            why = "set DENSEFACE_METRICS_TOKEN" if not metrics_token else "Authorization: Bearer <token>"
            return Response(
                f"metrics need a token ({why})\n",
                status_code=401,
                media_type="text/plain",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await state.gate.store.start()
        except StoreUnavailable as exc:  # calls answer UnknownStatus until it answers
            log.error("usage store unavailable at start: %s", exc)
        refresh = getattr(state.credentials, "refresh", None)
        loop = asyncio.get_running_loop()
        if callable(refresh):  # `kill -HUP`: re-read the keys file now
            try:
                loop.add_signal_handler(signal.SIGHUP, refresh)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread (tests)
                refresh = None
        pool = state.pool_factory()
        await pool.start()  # every worker has loaded its models
        state.pool = pool
        log.info("ready: %d inference worker process(es)", pool.size)
        try:
            yield
        finally:
            if callable(refresh):
                loop.remove_signal_handler(signal.SIGHUP)
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
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: not_found, 405: other_method})
    return EdgeHeaders(app, allowed_hosts)


__all__ = ["ERROR_CODES", "MAX_IN_FLIGHT_PER_WORKER", "ApiApp", "EdgeHeaders", "create_app"]
