"""Wiring: settings → keys, fetcher, service, worker processes → ASGI app → uvicorn."""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path
from urllib.parse import quote

import uvicorn
from pydantic import ValidationError
from starlette.applications import Starlette

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
) -> tuple[Starlette, KeysFile | CredentialStore, Credential | None]:
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
    )
    return create_app(state), store, local


def stuck_after(deadline: float) -> float:
    """How long a worker may run one job before it is killed and replaced: twice the request deadline,
    at least 30 s (its request has long timed out by then; a slow job is not killed for a short one)."""
    return max(2 * deadline, 30.0)


def page_link(host: str, port: int, credential: Credential) -> str:
    """The page URL with the key in the fragment (a fragment is never sent to the server)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - display only
    return f"http://{shown}:{port}/#sid={quote(credential.secret_id)}&skey={quote(credential.secret_key)}"


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
        # The generated local key, shown once on the operator's terminal; never logged, and never
        # written where stdout is not a terminal (a container's stdout is its log).
        credentials_file = settings.config_dir / "credentials.toml"
        link = page_link(settings.host, settings.port, local) if sys.stdout.isatty() else None
        sys.stdout.write(
            f"\n  denseface is starting on http://{settings.host}:{settings.port}\n"
            f"  local API key: SecretId {local.secret_id} (SecretKey in {credentials_file})\n"
            + (f"  open the page: {link}\n\n" if link else "\n")
        )
        sys.stdout.flush()
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
        # SIGTERM/Ctrl-C: stop accepting, let the calls in flight finish (each within the deadline)
        timeout_graceful_shutdown=drain_seconds(settings.deadline),
    )
    log.info("stopped")
    return 0


def drain_seconds(deadline: float) -> int:
    """How long a stopping server waits for the calls in flight: each ends within the deadline."""
    return math.ceil(deadline) + 5
