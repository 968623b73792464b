"""One API call through the server, cheapest refusal first (the admission path).

=====  =================================================================  ====================================
 step  check (nothing later runs if one fails)                            costs the caller
=====  =================================================================  ====================================
 1     the client address has refusals left (:class:`ClientGuard`)        RequestLimitExceeded.IPLimitExceeded
 2     :func:`~denseface.rpc.protocol.preflight`: method, sizes           a refusal token (no body byte read)
       (``Content-Length``), Authorization, timestamp window, the key
       exists and is enabled (a v1 GET: also its fields); the key has     RequestLimitExceeded (no token)
       a free slot (step 6, checked again there)
 3     the body, bounded and hashed as it arrives, within the pre-auth    waits for room; a refusal token if
       byte budget (all addresses / this address) and the connection's    it is too large or cut off
       body deadline (:mod:`denseface.server.edge`)
 4     :func:`~denseface.rpc.protocol.complete`: the signature, then the  a refusal token if the signature
       target and parameters (a large JSON body parsed off the loop)      fails
 5     v1 replay (:func:`denseface.rpc.replay.check_replay`)              AuthFailure.SignatureExpire
 6     the key's calls in progress (:class:`KeySlots`), the server's      RequestLimitExceeded
       calls in flight (workers × 32)
 7     the account gate: state, actions, rate, quota                      (:mod:`denseface.rpc.accounts.gate`)
 8     the work (Url download, queue in the key's turn, the worker),      FailedOperation.RequestTimeout:
       within the request deadline (a job never runs longer than the      charged to the key, and a strike,
       deadline on a worker: :mod:`denseface.server.workers`)             if its job had run ≥ half of it
=====  =================================================================  ====================================

Until step 4 passes, a request holds no in-flight slot, no worker and at most its share of the pre-auth
byte budget. Every answer is HTTP 200 JSON with a RequestId.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from denseface.errors import DensefaceError
from denseface.rpc.accounts import AccountStore, Gate, Ticket
from denseface.rpc.accounts.sqlite import SqliteStore
from denseface.rpc.catalog import IMPLEMENTED_ACTIONS
from denseface.rpc.envelope import success_envelope_json
from denseface.rpc.protocol import (
    ApiCall,
    ApiError,
    CredentialLookup,
    Preflight,
    complete,
    envelope_for_error,
    lookup,
    new_request_id,
    normalize_language,
    preflight,
)
from denseface.rpc.replay import check_replay
from denseface.rpc.service import SERVER_ERROR, ActionService
from denseface.server.guards import IP_LIMITED, ClientGuard, KeySlots, read_body
from denseface.server.metrics import Metrics, key_label
from denseface.server.workers import ProcessPool

log = logging.getLogger(__name__)
MAX_IN_FLIGHT_PER_WORKER = 32  # authenticated calls at once (bounds memory: each holds ≤ 10 MB of body)
TIMEOUT = "FailedOperation.RequestTimeout"
_THREAD_PARSE_BYTES = 256 * 1024  # larger bodies are checked and parsed off the event loop


class ApiApp:
    """Request handling state: keys, the account gate (state, actions, rate, quota, usage over one
    store), the guards, service, worker pool, metrics. ``accounts`` defaults to an in-memory SQLite
    store; ``guard`` to no refusal limit and the default budgets; ``key_slots`` to 32 calls per key."""

    def __init__(
        self,
        *,
        credentials: CredentialLookup,
        service: ActionService,
        pool_factory: Any,
        default_qps: float | None,
        deadline: float,
        accounts: AccountStore | None = None,
        guard: ClientGuard | None = None,
        key_slots: KeySlots | None = None,
    ) -> None:
        self.credentials = credentials
        self.service = service
        self.pool_factory = pool_factory
        self.pool: ProcessPool | None = None
        store = accounts if accounts is not None else SqliteStore(":memory:", hold=deadline + 60)
        self.gate = Gate(store, default_qps)
        self.guard = guard if guard is not None else ClientGuard(rate=0)
        self.key_slots = key_slots if key_slots is not None else KeySlots()
        self.deadline = deadline
        self.metrics = Metrics(lambda: self.pool, self.gate)
        self._in_flight = 0

    # ------------------------------------------------------------------------------ steps 1–4: strangers
    async def _authenticate(self, request: Request, client: str) -> ApiCall:
        self.guard.check(client)
        now = time.time()
        try:
            pre = preflight(
                request.method,
                request.scope["query_string"].decode("latin-1"),
                dict(request.headers.items()),
                content_length=_declared_length(request),
                now=now,
                credentials=self.credentials,
            )
        except ApiError as error:
            self._refused(client, error)
            raise
        if pre.credential is not None and pre.needs_body:  # a key at its cap: refused before its body
            try:
                self.key_slots.check(pre.credential.secret_id, pre.credential.concurrency)
            except ApiError as error:
                error.language = pre.language
                raise
        try:
            if not pre.needs_body:
                return complete(pre, b"", now=now, credentials=self.credentials)
            return await self._with_body(request, client, pre, now)
        except ApiError as error:
            # past a good signature, the request's own errors (action, parameters) cost no token
            if pre.credential is None or error.code.startswith(("AuthFailure", "RequestSizeLimit")):
                self._refused(client, error)
            raise
        except ConnectionResetError as exc:
            self.guard.refused(client)
            raise ClientDisconnect() from exc

    def _refused(self, client: str, error: ApiError) -> None:
        self.guard.refused(client)
        self.metrics.refused.labels(error.code).inc()

    async def _with_body(self, request: Request, client: str, pre: Preflight, now: float) -> ApiCall:
        declared = _declared_length(request)
        held = await self.guard.hold(client, pre.body_limit if declared is None else declared)
        try:
            body, digest = await read_body(request.receive, pre.body_limit)
            finish = functools.partial(complete, pre, body, now=now, credentials=self.credentials)
            if len(body) > _THREAD_PARSE_BYTES:  # a JSON body of megabytes: not on the event loop
                return await asyncio.to_thread(finish, body_sha256=digest)
            return finish(body_sha256=digest)
        finally:
            await self.guard.release(client, held)

    # ------------------------------------------------------------------------ steps 5–8: one key's call
    async def _process(self, call: ApiCall, pool: ProcessPool, request_id: str) -> bytes:
        try:
            await check_replay(self.gate.store, call, now=time.time())
            credential = lookup(self.credentials, call.secret_id)  # the keys file may have changed
            self.key_slots.acquire(call.secret_id, credential.concurrency)
        except ApiError as error:
            raise _Answered(error, call) from error
        try:
            self._in_flight += 1
            self.metrics.in_flight.inc()
            if self._in_flight > pool.size * MAX_IN_FLIGHT_PER_WORKER:
                raise _Answered(ApiError("RequestLimitExceeded", detail="server busy"), call)
            try:
                ticket = await self.gate.admit(credential, call.action, request_id)
            except ApiError as error:
                raise _Answered(error, call) from error
            return await self._work(call, ticket, pool, request_id)
        finally:
            self._in_flight -= 1
            self.metrics.in_flight.dec()
            self.key_slots.release(call.secret_id)

    async def _work(self, call: ApiCall, ticket: Ticket, pool: ProcessPool, request_id: str) -> bytes:
        run = functools.partial(pool.run, request_id=request_id, key=call.secret_id)
        try:
            fields = await asyncio.wait_for(
                self.service.handle(call, run, from_query=call.from_query), self.deadline
            )
        except asyncio.TimeoutError as error:
            ran = pool.took_worker(request_id)
            held_worker = ran is not None and ran >= self.deadline / 2
            if held_worker:  # its own job held a worker for much of the deadline: it counts against the key
                self.key_slots.strike(call.secret_id)
            await self._settle(ticket, call, TIMEOUT, charge=held_worker)
            raise _Answered(ApiError(TIMEOUT, detail=f"{self.deadline:g} s"), call) from error
        except BaseException as error:  # settled with its code, so it consumes no quota
            await self._settle(ticket, call, _outcome(error))
            if isinstance(error, DensefaceError):  # rendered in the call's language by `api`
                raise _Answered(error, call) from error
            raise
        await self._settle(ticket, call, "OK")
        return fields

    async def _settle(self, ticket: Ticket, call: ApiCall, code: str, *, charge: bool | None = None) -> None:
        try:
            await self.gate.settle(ticket, code, charge=charge)
        except ApiError as error:  # a success that could not be counted is not answered as one
            raise _Answered(error, call) from error

    # ------------------------------------------------------------------------------------------- answer
    async def api(self, request: Request) -> Response:
        request_id = new_request_id()
        started = time.perf_counter()
        client = request.client.host if request.client else "-"
        headers = request.headers
        language = normalize_language(headers.get("x-tc-language")) or "zh-CN"
        action = headers.get("x-tc-action") or request.query_params.get("Action") or "-"
        code = "OK"
        secret_id: str | None = None
        try:
            if self.pool is None:
                raise ApiError("RequestLimitExceeded", detail="server starting")
            call = await self._authenticate(request, client)
            language, action, secret_id = call.language, call.action, call.secret_id
            payload: dict[str, Any] | bytes = success_envelope_json(
                await self._process(call, self.pool, request_id), request_id
            )
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
        except Exception:
            log.exception("request %s failed", request_id)
            code = "InternalError"
            payload = envelope_for_error(ApiError(code), request_id, language)
        elapsed = time.perf_counter() - started
        action_label = action if action in IMPLEMENTED_ACTIONS else "other"
        self.metrics.requests.labels(action_label, code).inc()
        if secret_id is not None:
            self.metrics.key_calls.labels(key_label(secret_id), action_label, code).inc()
        self.metrics.latency.labels(action_label).observe(elapsed)
        level = logging.DEBUG if code == IP_LIMITED else logging.INFO  # a flood is not logged line by line
        log.log(level, "%s %s %s %.1f ms", request_id, action_label, code, elapsed * 1000)
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
    if isinstance(error, asyncio.CancelledError):
        return TIMEOUT
    return "InternalError"


def _declared_length(request: Request) -> int | None:
    """The ``Content-Length`` (``None``: chunked or absent; then the body is capped while read)."""
    value = request.headers.get("content-length", "").strip()
    return int(value) if value.isdigit() and len(value) < 19 else None


__all__ = ["MAX_IN_FLIGHT_PER_WORKER", "ApiApp"]
