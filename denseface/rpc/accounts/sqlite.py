"""The embedded store: one SQLite file (WAL) in the config dir; nothing to install, survives restarts.

Each admit/settle is one short ``BEGIN IMMEDIATE`` transaction, so several processes on one machine may
share the file and still hold a key's rate and quota exactly. ``synchronous=NORMAL`` (WAL): a commit is
durable against a process crash, the last commits may be lost if the machine loses power.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from denseface.rpc.accounts.store import (
    ADMITTED,
    MALFORMED,
    NOT_A_STORE,
    RATE_LIMITED,
    USED_UP,
    Admission,
    StoreMalformed,
    StoreUnavailable,
    UsageRow,
)

log = logging.getLogger(__name__)
SCHEMA_VERSION = "1"
BUSY_TIMEOUT = 2.0  # seconds a transaction waits for another process's lock before UnknownStatus
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (
    secret_id TEXT PRIMARY KEY, used INTEGER NOT NULL DEFAULT 0, tokens REAL, refilled REAL);
CREATE TABLE IF NOT EXISTS holds (
    request_id TEXT PRIMARY KEY, secret_id TEXT NOT NULL, expires REAL NOT NULL);
CREATE INDEX IF NOT EXISTS holds_by_key ON holds (secret_id, expires);
CREATE TABLE IF NOT EXISTS nonces (
    secret_id TEXT NOT NULL, nonce TEXT NOT NULL, expires REAL NOT NULL,
    PRIMARY KEY (secret_id, nonce)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS nonces_by_expiry ON nonces (expires);
CREATE TABLE IF NOT EXISTS usage (
    secret_id TEXT NOT NULL, day TEXT NOT NULL, action TEXT NOT NULL, code TEXT NOT NULL,
    calls INTEGER NOT NULL, PRIMARY KEY (secret_id, day, action, code)) WITHOUT ROWID;
"""
_COUNT = (
    "INSERT INTO usage VALUES (?, ?, ?, ?, 1) "
    "ON CONFLICT (secret_id, day, action, code) DO UPDATE SET calls = calls + 1"
)


class SqliteStore:
    """:class:`~denseface.rpc.accounts.store.AccountStore` in one SQLite file (``":memory:"`` for tests).

    ``create``: make the tables and the store's marker (the server does; ``denseface keys`` only reads).
    ``clock`` is wall-clock time in seconds (shared by processes on the machine).
    """

    name = "sqlite"

    def __init__(
        self,
        path: Path | str,
        *,
        hold: float = 60.0,
        create: bool = True,
        clock: Callable[[], float] = time.time,
        busy_timeout: float = BUSY_TIMEOUT,
    ) -> None:
        self.path = str(path)
        self._hold = hold
        self._clock = clock
        self._lock = threading.Lock()
        try:
            self._db = self._connect(create, busy_timeout)
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"SQLite store {self.path}: {exc}") from exc

    def _connect(self, create: bool, busy_timeout: float) -> sqlite3.Connection:
        target, uri = self.path, False
        if self.path != ":memory:":
            if create:  # private, like the keys file (SQLite gives its -wal and -shm files the same mode)
                Path(self.path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
            elif Path(self.path).exists():
                target, uri = Path(self.path).resolve().as_uri() + "?mode=ro", True
            else:  # nothing recorded yet: read an empty store, create no file
                target = ":memory:"
        db = sqlite3.connect(
            target, timeout=busy_timeout, isolation_level=None, check_same_thread=False, uri=uri
        )
        db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        if create:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.executescript(_SCHEMA)
            db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        return db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"SQLite store {self.path}: {exc}") from exc

    def _used(self, db: sqlite3.Connection, secret_id: str) -> tuple[int, float | None, float | None]:
        row = db.execute(
            "SELECT used, typeof(used), tokens, refilled FROM accounts WHERE secret_id = ?", (secret_id,)
        ).fetchone()
        if row is None:
            db.execute("INSERT INTO accounts (secret_id) VALUES (?)", (secret_id,))
            return 0, None, None
        used, kind, tokens, refilled = row
        if kind != "integer" or used < 0:
            raise StoreMalformed(f"accounts.used of {secret_id} is {used!r}")
        return int(used), tokens, refilled

    async def start(self) -> None:
        """Nothing more to do: the tables and the marker were made when the store was opened."""

    async def ping(self) -> None:
        self._read("SELECT 1", ())

    async def admit(self, admission: Admission, *, day: str) -> str:
        a = admission
        now = self._clock()
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM meta WHERE name = 'schema'").fetchone() is None:
                return NOT_A_STORE
            if db.execute("SELECT 1 FROM holds WHERE request_id = ?", (a.request_id,)).fetchone():
                return ADMITTED
            try:
                used, tokens, refilled = self._used(db, a.secret_id)
            except StoreMalformed:
                return MALFORMED
            if a.qps is not None:
                capacity = max(1.0, a.qps)
                level = capacity if tokens is None else float(tokens)
                since = now if refilled is None else float(refilled)
                level = min(capacity, level + max(0.0, now - since) * a.qps)
                allowed = level >= 1.0
                db.execute(
                    "UPDATE accounts SET tokens = ?, refilled = ? WHERE secret_id = ?",
                    (level - 1.0 if allowed else level, now, a.secret_id),
                )
                if not allowed:
                    db.execute(_COUNT, (a.secret_id, day, a.action, RATE_LIMITED))
                    return RATE_LIMITED
            db.execute("DELETE FROM holds WHERE secret_id = ? AND expires <= ?", (a.secret_id, now))
            if a.quota is not None:
                (held,) = db.execute(
                    "SELECT count(*) FROM holds WHERE secret_id = ?", (a.secret_id,)
                ).fetchone()
                if used + held >= a.quota:
                    db.execute(_COUNT, (a.secret_id, day, a.action, USED_UP))
                    return USED_UP
            db.execute("INSERT INTO holds VALUES (?, ?, ?)", (a.request_id, a.secret_id, now + self._hold))
            return ADMITTED

    async def settle(
        self, secret_id: str, request_id: str, action: str, code: str, *, day: str, charge: bool | None = None
    ) -> bool:
        with self._transaction() as db:
            if db.execute("DELETE FROM holds WHERE request_id = ?", (request_id,)).rowcount == 0:
                return False
            if code == ADMITTED if charge is None else charge:
                self._used(db, secret_id)  # raises StoreMalformed on a record it cannot add to
                db.execute("UPDATE accounts SET used = used + 1 WHERE secret_id = ?", (secret_id,))
            db.execute(_COUNT, (secret_id, day, action, code))
            return True

    async def record(self, secret_id: str, action: str, code: str, *, day: str) -> None:
        with self._transaction() as db:
            db.execute(_COUNT, (secret_id, day, action, code))

    async def remember_nonce(self, secret_id: str, nonce: str, ttl: float) -> bool:
        now = self._clock()
        with self._transaction() as db:
            db.execute("DELETE FROM nonces WHERE expires <= ?", (now,))
            inserted = db.execute(
                "INSERT OR IGNORE INTO nonces VALUES (?, ?, ?)", (secret_id, nonce, now + max(ttl, 1.0))
            )
            return inserted.rowcount == 1

    def _read(self, sql: str, args: tuple[object, ...]) -> list[tuple[object, ...]]:
        with self._lock:
            try:
                return list(self._db.execute(sql, args).fetchall())
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return []
                raise StoreUnavailable(f"SQLite store {self.path}: {exc}") from exc
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"SQLite store {self.path}: {exc}") from exc

    async def used(self, secret_ids: list[str]) -> dict[str, int]:
        rows = self._read("SELECT secret_id, used FROM accounts", ())
        found = {str(sid): used for sid, used in rows}
        result: dict[str, int] = {}
        for secret_id in secret_ids:
            value = found.get(secret_id, 0)
            if not isinstance(value, int) or value < 0:
                raise StoreMalformed(f"accounts.used of {secret_id} is {value!r}")
            result[secret_id] = value
        return result

    async def usage(self, secret_id: str | None = None, since: str | None = None) -> list[UsageRow]:
        rows = self._read(
            "SELECT secret_id, day, action, code, calls FROM usage "
            "WHERE (?1 IS NULL OR secret_id = ?1) AND (?2 IS NULL OR day >= ?2) "
            "ORDER BY secret_id, day, action, code",
            (secret_id, since),
        )
        return [UsageRow(str(s), str(d), str(a), str(c), int(str(n))) for s, d, a, c, n in rows]

    async def close(self) -> None:
        if self.path == ":memory:":  # lives as long as this object (an app may be started again)
            return
        with self._lock:
            self._db.close()


__all__ = ["SqliteStore"]
