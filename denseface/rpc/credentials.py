"""API keys (SecretId/SecretKey pairs), where they come from, and per-key rate limits.

Keys come from a TOML file and/or the environment::

    [[keys]]
    secret_id = "AKID…"
    secret_key = "…"
    qps = 20          # optional; 0 = unlimited (as DENSEFACE_QPS=0); omitted = the server's default
    enabled = true    # optional; default true (false: AuthFailure.SecretIdNotFound)
    quota = 1000      # optional; successful calls this key may make in all (omitted: no limit)
    state = "active"  # optional; "active" | "in-arrears" | "stopped" | "recovered"
    actions = ["AnalyzeDenseLandmarks"]   # optional; the actions this key may call (omitted: all)

    DENSEFACE_SECRET_ID / DENSEFACE_SECRET_KEY   (one more enabled key, at the server's default rate)

:class:`KeysFile` re-reads the file when it changes (checked at most once a second), so edits and
``denseface keys`` commands take effect without a restart; :func:`write_keys_file` rewrites it
atomically with mode 0600. On first start :func:`ensure_local_credential` writes a random key to
``<config_dir>/credentials.toml`` (mode 0600) so a fresh install is usable without choosing a key.
Secret keys never appear in ``repr``, error messages or logs.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import stat
import string
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

logger = logging.getLogger(__name__)

# Names of environment variables, not secrets.
ENV_SECRET_ID = "DENSEFACE_SECRET_ID"  # noqa: S105
ENV_SECRET_KEY = "DENSEFACE_SECRET_KEY"  # noqa: S105
LOCAL_CREDENTIALS_FILE = "credentials.toml"
SECRET_ID_PREFIX = "AKID"  # noqa: S105 - a public prefix, not a secret
_ALNUM = string.ascii_letters + string.digits
_KEY_FIELDS = frozenset(
    {"secret_id", "secret_key", "qps", "enabled", "quota", "state", "actions", "concurrency"}
)
#: Account states and the code each answers (``active``: none).
STATES = ("active", "in-arrears", "stopped", "recovered")
STATE_CODES = {
    "in-arrears": "ResourceUnavailable.InArrears",
    "stopped": "ResourceUnavailable.StopUsing",
    "recovered": "ResourceUnavailable.Recover",
}
RELOAD_INTERVAL = 1.0  # seconds between checks of the keys file's mtime


class CredentialConfigError(ValueError):
    """A credentials file or the environment holds an invalid key definition."""


@dataclass(frozen=True)
class Credential:
    """One API key. ``qps`` is its sustained request rate (``None``: the server's default rate; 0:
    unlimited, the same meaning as ``DENSEFACE_QPS=0``);
    ``quota`` the successful calls it may make in all (``None``: no limit); ``state`` its account state
    (:data:`STATES`); ``actions`` the actions it may call (``None``: all); ``concurrency`` the calls it
    may have in progress at once on one server (``None``: the server's default)."""

    secret_id: str
    secret_key: str = field(repr=False)
    qps: float | None = None
    enabled: bool = True
    quota: int | None = None
    state: str = "active"
    actions: frozenset[str] | None = None
    concurrency: int | None = None

    def __repr__(self) -> str:
        return (
            f"Credential(secret_id={self.secret_id!r}, secret_key='***', qps={self.qps!r}, "
            f"enabled={self.enabled!r}, quota={self.quota!r}, state={self.state!r}, "
            f"actions={None if self.actions is None else sorted(self.actions)!r}, "
            f"concurrency={self.concurrency!r})"
        )


class CredentialStore:
    """SecretId → :class:`Credential`. Read-only after construction."""

    def __init__(self, credentials: Iterable[Credential] = ()) -> None:
        self._by_id: dict[str, Credential] = {}
        for credential in credentials:
            if credential.secret_id in self._by_id:
                raise CredentialConfigError(f"SecretId {credential.secret_id!r} is defined twice")
            self._by_id[credential.secret_id] = credential

    def get(self, secret_id: str) -> Credential | None:
        """The key with this SecretId (enabled or not), or ``None``."""
        return self._by_id.get(secret_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Credential]:
        return iter(self._by_id.values())

    def __contains__(self, secret_id: object) -> bool:
        return secret_id in self._by_id

    def __repr__(self) -> str:
        return f"CredentialStore(secret_ids={sorted(self._by_id)!r})"

    @classmethod
    def from_toml(cls, path: Path) -> CredentialStore:
        """Load the ``[[keys]]`` tables of a TOML file."""
        return cls(_read_toml(path))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CredentialStore:
        """The key in ``DENSEFACE_SECRET_ID``/``DENSEFACE_SECRET_KEY``, if both are set."""
        return cls(_read_env(os.environ if environ is None else environ))

    @classmethod
    def load(cls, path: Path | None = None, environ: Mapping[str, str] | None = None) -> CredentialStore:
        """Keys from ``path`` (if given) plus the environment key (if set)."""
        found = _read_toml(path) if path is not None else []
        found.extend(_read_env(os.environ if environ is None else environ))
        return cls(found)


def _check_secret(value: object, what: str, where: str) -> str:
    if not isinstance(value, str) or not value or not value.isascii() or not value.isprintable():
        raise CredentialConfigError(f"{where}: {what} must be a non-empty printable ASCII string")
    if any(ch.isspace() for ch in value):
        raise CredentialConfigError(f"{where}: {what} must not contain whitespace")
    return value


def _credential_from_table(table: object, where: str) -> Credential:
    if not isinstance(table, dict):
        raise CredentialConfigError(f"{where}: each [[keys]] entry must be a table")
    unknown = sorted(set(table) - _KEY_FIELDS)
    if unknown:
        raise CredentialConfigError(f"{where}: unknown field(s) {', '.join(unknown)}")
    secret_id = _check_secret(table.get("secret_id"), "secret_id", where)
    secret_key = _check_secret(table.get("secret_key"), "secret_key", f"{where} ({secret_id})")
    qps: Any = table.get("qps")
    if qps is not None and (isinstance(qps, bool) or not isinstance(qps, (int, float)) or not qps >= 0):
        raise CredentialConfigError(f"{where} ({secret_id}): qps must be a number ≥ 0 (0: unlimited)")
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise CredentialConfigError(f"{where} ({secret_id}): enabled must be true or false")
    quota: Any = table.get("quota")
    if quota is not None and (isinstance(quota, bool) or not isinstance(quota, int) or quota < 0):
        raise CredentialConfigError(f"{where} ({secret_id}): quota must be an integer ≥ 0")
    state = table.get("state", "active")
    if state not in STATES:
        raise CredentialConfigError(f"{where} ({secret_id}): state must be one of {', '.join(STATES)}")
    actions: Any = table.get("actions")
    if actions is not None and (
        not isinstance(actions, list) or not all(isinstance(a, str) and a for a in actions)
    ):
        raise CredentialConfigError(f"{where} ({secret_id}): actions must be a list of action names")
    concurrency: Any = table.get("concurrency")
    if concurrency is not None and (
        isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1
    ):
        raise CredentialConfigError(f"{where} ({secret_id}): concurrency must be an integer ≥ 1")
    return Credential(
        secret_id,
        secret_key,
        None if qps is None else float(qps),
        enabled,
        quota,
        str(state),
        None if actions is None else frozenset(actions),
        concurrency,
    )


def _read_toml(path: Path) -> list[Credential]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CredentialConfigError(f"cannot read credentials file {path}: {exc}") from exc
    return _read_text(text, path)


def _read_text(text: str, path: Path) -> list[Credential]:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CredentialConfigError(f"{path} is not valid TOML: {exc}") from exc
    keys = document.get("keys", [])
    if not isinstance(keys, list):
        raise CredentialConfigError(f"{path}: 'keys' must be an array of tables ([[keys]])")
    return [_credential_from_table(table, f"{path} [[keys]] #{i + 1}") for i, table in enumerate(keys)]


def _read_env(environ: Mapping[str, str]) -> list[Credential]:
    secret_id = environ.get(ENV_SECRET_ID, "")
    secret_key = environ.get(ENV_SECRET_KEY, "")
    if not secret_id and not secret_key:
        return []
    if not secret_id or not secret_key:
        raise CredentialConfigError(f"set both {ENV_SECRET_ID} and {ENV_SECRET_KEY}, or neither")
    where = "environment"
    return [
        Credential(
            _check_secret(secret_id, ENV_SECRET_ID, where), _check_secret(secret_key, ENV_SECRET_KEY, where)
        )
    ]


def generate_credential() -> Credential:
    """A fresh random key: SecretId ``AKID`` + 32 letters/digits, a 40-character SecretKey."""
    secret_id = SECRET_ID_PREFIX + "".join(secrets.choice(_ALNUM) for _ in range(32))
    secret_key = "".join(secrets.choice(_ALNUM) for _ in range(40))
    return Credential(secret_id, secret_key)


def ensure_local_credential(config_dir: Path) -> Credential:
    """The local key in ``<config_dir>/credentials.toml``, created (mode 0600) if the file does not exist.

    An existing file is loaded as is and its first enabled key returned; a file with no enabled key is an
    error. Creation is atomic (``O_EXCL``), so two processes starting together end up with the same key.
    """
    path = config_dir / LOCAL_CREDENTIALS_FILE
    config_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    credential = generate_credential()
    text = (
        "# denseface API key, created on first start. Keep this file private.\n"
        "[[keys]]\n"
        f'secret_id = "{credential.secret_id}"\n'
        f'secret_key = "{credential.secret_key}"\n'
        "enabled = true\n"
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _existing_local_credential(path)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    logger.info("created a local API key %s in %s", credential.secret_id, path)
    return credential


def check_private(path: Path) -> None:
    """Refuse a keys file that users other than its owner may read or write (as ssh refuses a private
    key file): :class:`CredentialConfigError` with the command that fixes it."""
    if os.name != "posix":
        return
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise CredentialConfigError(f"cannot read credentials file {path}: {exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CredentialConfigError(
            f"permissions {stat.S_IMODE(mode):04o} for {path} are too open: it holds secret keys, so it "
            f"must not be accessible by other users; this file is ignored. Run: chmod 600 {path}"
        )


def _existing_local_credential(path: Path) -> Credential:
    check_private(path)
    for credential in _read_toml(path):
        if credential.enabled:
            return credential
    raise CredentialConfigError(f"{path} has no enabled key; add one or delete the file to create a new one")


def _toml_string(value: str) -> str:
    # JSON's escapes (\\, \", \uXXXX) are TOML basic-string escapes too
    return json.dumps(value, ensure_ascii=True)


def keys_toml(credentials: Iterable[Credential]) -> str:
    """The keys file's text for ``credentials`` (fields at their defaults are left out)."""
    lines = ["# denseface API keys (rewritten by `denseface keys`). Keep this file private (mode 0600)."]
    for c in credentials:
        lines += ["", "[[keys]]", f"secret_id = {_toml_string(c.secret_id)}"]
        lines.append(f"secret_key = {_toml_string(c.secret_key)}")
        if c.qps is not None:
            qps = float(c.qps)
            lines.append(f"qps = {int(qps) if qps.is_integer() else qps!r}")
        lines.append(f"enabled = {'true' if c.enabled else 'false'}")
        if c.quota is not None:
            lines.append(f"quota = {c.quota}")
        if c.state != "active":
            lines.append(f"state = {_toml_string(c.state)}")
        if c.actions is not None:
            lines.append(f"actions = [{', '.join(_toml_string(a) for a in sorted(c.actions))}]")
        if c.concurrency is not None:
            lines.append(f"concurrency = {c.concurrency}")
    return "\n".join(lines) + "\n"


def write_keys_file(path: Path, credentials: Iterable[Credential]) -> None:
    """Rewrite the keys file atomically (a new 0600 file beside it, then ``os.replace``)."""
    text = keys_toml(credentials)
    CredentialStore(_read_text(text, path))  # never write a file the server would refuse
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


class KeysFile:
    """The keys of a TOML file (optional) plus the environment key, re-read when the file changes.

    ``get`` stats the file at most once per :data:`RELOAD_INTERVAL` seconds and reloads it when its
    inode, size, mtime or mode changed (the server also calls :meth:`refresh` on SIGHUP); a file that
    no longer loads, or that other users may read (:func:`check_private`), is logged and the previous
    keys stay in force; at start it is an error. Implements the protocol's ``CredentialLookup``.
    """

    def __init__(
        self,
        path: Path | None,
        environ: Mapping[str, str] | None = None,
        *,
        interval: float = RELOAD_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._env = _read_env(os.environ if environ is None else environ)
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._signature = self._stat()
        self._store = self._load()
        self._checked = clock()

    def _stat(self) -> tuple[int, int, int, int] | None:
        if self.path is None:
            return None
        try:
            info = self.path.stat()
        except OSError:
            return None
        return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_mode)

    def _load(self) -> CredentialStore:
        found: list[Credential] = []
        if self.path is not None:
            check_private(self.path)
            found = _read_toml(self.path)
        return CredentialStore([*found, *self._env])

    def refresh(self) -> None:
        """Reload now if the file changed (``get`` does this at most once per interval)."""
        with self._lock:
            self._checked = self._clock()
            signature = self._stat()
            if signature == self._signature:
                return
            self._signature = signature
            try:
                self._store = self._load()
            except CredentialConfigError as exc:
                logger.error("keys file not reloaded, the previous keys stay in force: %s", exc)
                return
            logger.info("keys file %s reloaded: %d key(s)", self.path, len(self._store))

    def get(self, secret_id: str) -> Credential | None:
        if self._clock() - self._checked >= self._interval:
            self.refresh()
        return self._store.get(secret_id)

    def __len__(self) -> int:
        return len(self._store)

    def __iter__(self) -> Iterator[Credential]:
        return iter(self._store)

    def __repr__(self) -> str:
        return f"KeysFile({str(self.path)!r}, {self._store!r})"


__all__ = [
    "ENV_SECRET_ID",
    "ENV_SECRET_KEY",
    "LOCAL_CREDENTIALS_FILE",
    "STATES",
    "STATE_CODES",
    "Credential",
    "CredentialConfigError",
    "CredentialStore",
    "KeysFile",
    "check_private",
    "ensure_local_credential",
    "generate_credential",
    "keys_toml",
    "write_keys_file",
]
