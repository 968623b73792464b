"""Keys' quotas, rate limits and usage: one interface (:class:`AccountStore`), two stores behind it —
embedded SQLite (default) and Redis shared by replicas (``DENSEFACE_REDIS_URL``) — and the
:class:`Gate` that applies them to each call. Nothing above this package knows which store runs."""

from __future__ import annotations

from pathlib import Path

from denseface.rpc.accounts.gate import GATE_ERROR_CODES, Gate, Ticket
from denseface.rpc.accounts.store import AccountStore, StoreMalformed, StoreUnavailable, UsageRow

SQLITE_FILE = "usage.sqlite3"


def open_store(
    redis_url: str | None, config_dir: Path, *, hold: float = 60.0, create: bool = True
) -> AccountStore:
    """Redis at ``redis_url`` if given, else SQLite at ``<config_dir>/usage.sqlite3``. ``create``: write
    the tables / the marker (the server, with ``await store.start()``); the ``keys`` commands only read."""
    if redis_url:
        from denseface.rpc.accounts.redis_store import RedisStore

        return RedisStore(redis_url, hold=hold)
    from denseface.rpc.accounts.sqlite import SqliteStore

    return SqliteStore(config_dir / SQLITE_FILE, hold=hold, create=create)


__all__ = [
    "GATE_ERROR_CODES",
    "SQLITE_FILE",
    "AccountStore",
    "Gate",
    "StoreMalformed",
    "StoreUnavailable",
    "Ticket",
    "UsageRow",
    "open_store",
]
