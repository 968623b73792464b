"""Wiring: settings → keys, fetcher, service, worker processes → ASGI app → uvicorn."""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path
from typing import Any

import uvicorn
from pydantic import ValidationError

from denseface.engine import models
from denseface.rpc.accounts import AccountStore, StoreUnavailable, open_store
from denseface.rpc.credentials import (
    LOCAL_CREDENTIALS_FILE,
    Credential,
    CredentialConfigError,
    CredentialStore,
    KeysFile,
    ensure_local_credential,
)
from denseface.rpc.fetch import UrlFetcher, parse_networks
from denseface.rpc.service import ActionService, ServiceOptions
from denseface.server.app import ApiApp, create_app
from denseface.server.edge import ConnectionLimits, raise_fd_limit, return_large_buffers, uvicorn_options
from denseface.server.guards import ClientGuard, KeySlots
from denseface.server.settings import Settings
from denseface.server.stream import MAX_MESSAGE_BYTES
from denseface.server.worker_process import WorkerConfig
from denseface.server.workers import ProcessPool

log = logging.getLogger(__name__)


def load_credentials(settings: Settings) -> tuple[KeysFile, Credential | None]:
    """The keys (re-read when their file changes), and the generated local key when neither a file nor
    the environment gives one (then the keys file is the local one, ``<config_dir>/credentials.toml``)."""
    store = KeysFile(settings.credentials)
    if len(store):
        return store, None
    local = ensure_local_credential(settings.config_dir)
    return KeysFile(settings.config_dir / LOCAL_CREDENTIALS_FILE), local


def build_app(
    settings: Settings, accounts: AccountStore | None = None
) -> tuple[Any, KeysFile | CredentialStore, Credential | None]:
    """The app for ``settings``; ``accounts``: a store instead of the one the settings name."""
    models.locate(settings.model_dir)  # fail fast, with the command to run, before binding the port
    store, local = load_credentials(settings)
    fetcher = UrlFetcher(
        allow_networks=parse_networks(settings.url_allow),
        connect_timeout=settings.url_connect_timeout,
        deadline=settings.url_deadline,
    )
    worker = WorkerConfig(
        model_dir=settings.model_dir,
        options=ServiceOptions(min_face_size=settings.min_face_size),
        log_level=logging.getLogger().getEffectiveLevel(),
        detector=settings.detector,
    )
    state = ApiApp(
        credentials=store,
        service=ActionService(fetcher),
        pool_factory=lambda: ProcessPool(
            settings.workers, worker, stuck_after=stuck_after(settings.deadline)
        ),
        default_qps=settings.default_qps,
        deadline=settings.deadline,
        accounts=accounts or open_store(settings.redis_url, settings.config_dir, hold=settings.deadline + 60),
        guard=ClientGuard(
            rate=settings.client_rate,
            burst=settings.client_burst,
            budget=settings.preauth_bytes,
            per_client=settings.preauth_bytes_per_client,
            wait=settings.body_timeout,
        ),
        key_slots=KeySlots(settings.key_concurrency),
    )
    app = create_app(state, metrics_token=settings.metrics_token, allowed_hosts=settings.allowed_hosts)
    return app, store, local


def connection_limits(settings: Settings) -> ConnectionLimits:
    return ConnectionLimits(
        max_connections=settings.max_connections,
        max_header_bytes=settings.max_header_bytes,
        header_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
        keepalive_timeout=settings.keepalive_timeout,
    )


def stuck_after(deadline: float) -> float:
    """How long a worker may run one job before it is killed and replaced: the request deadline (a job
    that has run that long can no longer be answered in time; its request has timed out)."""
    return deadline


def page_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - display only
    return f"http://{shown}:{port}/"


def serve(
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    credentials: str | None = None,
    model_dir: str | None = None,
    detector: str | None = None,
) -> int:
    try:
        settings = Settings.from_env(
            detector=detector,
            host=host,
            port=port,
            workers=workers,
            credentials=Path(credentials) if credentials else None,
            model_dir=Path(model_dir) if model_dir else None,
        )
    except ValidationError as exc:  # a DENSEFACE_* variable that is not valid: say which, no traceback
        for error in exc.errors():
            name = "DENSEFACE_" + "_".join(str(part) for part in error["loc"]).upper()
            log.error("%s: %s", name if error["loc"] else "settings", error["msg"])
        return 1
    try:
        app, store, local = build_app(settings)
    except (StoreUnavailable, CredentialConfigError) as exc:
        # the config dir is not writable, the keys file cannot be read (its mode, in a container: its
        # owner) or is not valid: one clear line, no traceback
        log.error("%s", exc)
        return 1
    ids = ", ".join(c.secret_id for c in store)
    log.info("accepting keys: %s", ids)
    log.info("usage store: %s", "Redis (DENSEFACE_REDIS_URL)" if settings.redis_url else "SQLite")
    if local is not None:
        # The SecretId and the file that holds the SecretKey: never the SecretKey itself (this lands
        # in terminals' scrollback, container logs and CI output).
        credentials_file = settings.config_dir / LOCAL_CREDENTIALS_FILE
        sys.stdout.write(
            f"\n  denseface is starting on {page_url(settings.host, settings.port)}\n"
            f"  local API key: SecretId {local.secret_id}\n"
            f"  its SecretKey is in {credentials_file} (mode 0600): paste both into the page\n\n"
        )
        sys.stdout.flush()
    limits = connection_limits(settings)
    return_large_buffers()
    opened = raise_fd_limit(limits.max_connections + 256 + 16 * settings.workers)
    if opened < limits.max_connections + 64:
        log.warning("open-file limit %d is below max_connections %d", opened, limits.max_connections)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        log_config=None,  # uvicorn's lines through the root logger: one format (denseface.logs)
        server_header=False,
        proxy_headers=False,
        ws="websockets-sansio",  # /v1/stream; reads one message at a time (paused until the app takes it)
        ws_max_size=MAX_MESSAGE_BYTES,
        **uvicorn_options(limits),
        # SIGTERM/Ctrl-C: stop accepting, let the calls in flight finish (each within the deadline)
        timeout_graceful_shutdown=drain_seconds(settings.deadline),
    )
    log.info("stopped")
    return 0


def drain_seconds(deadline: float) -> int:
    """How long a stopping server waits for the calls in flight: each ends within the deadline."""
    return math.ceil(deadline) + 5
