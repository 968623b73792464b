"""``denseface keys``: create, list and change API keys, and print their usage.

The keys file is ``--credentials``, else ``$DENSEFACE_CREDENTIALS``, else the local
``<config dir>/credentials.toml``; it is rewritten atomically with mode 0600 (comments are not kept) and a
running server picks the change up within a few seconds. A new key's SecretKey is printed once, on
creation, and never logged. Usage and used counts are read from the server's store: Redis when
``$DENSEFACE_REDIS_URL`` is set, else SQLite in the config dir.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from denseface.rpc.credentials import (
    LOCAL_CREDENTIALS_FILE,
    STATES,
    Credential,
    CredentialConfigError,
    CredentialStore,
    generate_credential,
    write_keys_file,
)

log = logging.getLogger("denseface")
EXIT_ERROR = 1
_UNCHANGED = object()  # an option not given to `keys set`


def _keys_path(args: argparse.Namespace) -> Path:
    from denseface.server.settings import Settings

    if args.credentials:
        return Path(args.credentials)
    settings = Settings.from_env()
    return settings.credentials or settings.config_dir / LOCAL_CREDENTIALS_FILE


def _read(path: Path) -> list[Credential]:
    return list(CredentialStore.from_toml(path)) if path.exists() else []


def _store() -> Any:
    from denseface.rpc.accounts import open_store
    from denseface.server.settings import Settings

    settings = Settings.from_env()
    return open_store(settings.redis_url, settings.config_dir, create=False)


async def _used(ids: list[str]) -> dict[str, int]:
    store = _store()
    try:
        result: dict[str, int] = await store.used(ids)
        return result
    finally:
        await store.close()


def _actions(names: list[str] | None) -> frozenset[str] | None:
    """``--actions A B`` or ``--actions A,B``; ``None``: every action."""
    if names is None:
        return None
    return frozenset(part.strip() for name in names for part in name.split(",") if part.strip())


def cmd_add(args: argparse.Namespace) -> int:
    path = _keys_path(args)
    keys = _read(path)
    fresh = generate_credential()
    key = dataclasses.replace(
        fresh, qps=args.qps, quota=args.quota, actions=_actions(args.actions), concurrency=args.concurrency
    )
    write_keys_file(path, [*keys, key])
    log.info("added key %s to %s", key.secret_id, path)
    # the product's output: the new secret, shown once on the operator's terminal, never logged
    sys.stdout.write(f"SecretId  {key.secret_id}\nSecretKey {key.secret_key}\n")
    return 0


def cmd_set(args: argparse.Namespace) -> int:
    path = _keys_path(args)
    keys = _read(path)
    changes: dict[str, Any] = {}
    if args.state is not None:
        changes["state"] = args.state
    if args.quota is not None:
        changes["quota"] = None if args.quota < 0 else args.quota
    if args.qps is not _UNCHANGED:
        changes["qps"] = args.qps  # None for "default"
    if args.actions is not None:
        changes["actions"] = None if args.actions == ["all"] else _actions(args.actions)
    if args.concurrency is not None:
        changes["concurrency"] = None if args.concurrency <= 0 else args.concurrency
    if not changes:
        log.error("nothing to change: give --state, --quota, --qps, --actions or --concurrency")
        return EXIT_ERROR
    if args.secret_id not in {k.secret_id for k in keys}:
        log.error("no key %s in %s", args.secret_id, path)
        return EXIT_ERROR
    keys = [dataclasses.replace(k, **changes) if k.secret_id == args.secret_id else k for k in keys]
    write_keys_file(path, keys)
    log.info("key %s changed in %s: %s", args.secret_id, path, ", ".join(sorted(changes)))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    keys = _read(_keys_path(args))
    used = asyncio.run(_used([k.secret_id for k in keys]))
    rows = [
        {
            "SecretId": k.secret_id,
            "State": k.state if k.enabled else "disabled",
            "Qps": k.qps,
            "Quota": k.quota,
            "Used": used.get(k.secret_id, 0),
            "Actions": None if k.actions is None else sorted(k.actions),
        }
        for k in keys
    ]
    if args.json:
        sys.stdout.write(json.dumps(rows, indent=1) + "\n")
        return 0
    sys.stdout.write(f"{'SecretId':<38} {'state':<10} {'qps':>8} {'quota':>10} {'used':>10}  actions\n")
    for k in keys:
        qps = "default" if k.qps is None else f"{k.qps:g}"
        quota = "-" if k.quota is None else str(k.quota)
        actions = "all" if k.actions is None else ",".join(sorted(k.actions))
        state = k.state if k.enabled else "disabled"
        count = used.get(k.secret_id, 0)
        sys.stdout.write(f"{k.secret_id:<38} {state:<10} {qps:>8} {quota:>10} {count:>10}  {actions}\n")
    return 0


def cmd_usage(args: argparse.Namespace) -> int:
    async def read() -> list[Any]:
        store = _store()
        try:
            return list(await store.usage(args.secret_id, args.since))
        finally:
            await store.close()

    rows = asyncio.run(read())
    if args.json:
        sys.stdout.write(json.dumps([dataclasses.asdict(r) for r in rows], indent=1) + "\n")
        return 0
    sys.stdout.write(f"{'SecretId':<38} {'day':<10} {'action':<24} {'code':<40} {'calls':>8}\n")
    for r in rows:
        sys.stdout.write(f"{r.secret_id:<38} {r.day:<10} {r.action:<24} {r.code:<40} {r.calls:>8}\n")
    return 0


def _day(text: str) -> str:
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError as exc:
        raise argparse.ArgumentTypeError("a UTC date, YYYY-MM-DD") from exc


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("an integer ≥ 0")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("an integer ≥ 1")
    return value


def _rate(text: str) -> float:
    """A rate in requests/s: a number ≥ 0, 0 meaning unlimited (as ``DENSEFACE_QPS=0``)."""
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError("a number ≥ 0 (0: unlimited)")
    return value


def _rate_or_default(text: str) -> float | None:
    """``default`` (the server's ``DENSEFACE_QPS``: ``None``) or a :func:`_rate`."""
    return None if text == "default" else _rate(text)


def _guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """``command`` with configuration and store errors reported as one logged line."""

    def run(args: argparse.Namespace) -> int:
        from denseface.rpc.accounts import StoreMalformed, StoreUnavailable

        try:
            return command(args)
        except (CredentialConfigError, StoreUnavailable, StoreMalformed, OSError, ValueError) as exc:
            log.error("%s", exc)
            return EXIT_ERROR

    return run


def add_parser(sub: Any) -> None:
    """Add ``keys`` and its subcommands to the ``denseface`` parser's subparsers."""
    keys = sub.add_parser("keys", help="create, list and change API keys; print their usage")
    keys.add_argument(
        "--credentials", help="the keys file (default: $DENSEFACE_CREDENTIALS or the local one)"
    )
    commands = keys.add_subparsers(dest="keys_command", required=True)

    p = commands.add_parser("add", help="create a key (random SecretId/SecretKey, printed once)")
    p.add_argument(
        "--qps", type=_rate, help="its rate limit, requests/s; 0: unlimited (default: DENSEFACE_QPS)"
    )
    p.add_argument("--quota", type=_count, help="successful calls it may make in all (default: no limit)")
    p.add_argument("--actions", nargs="+", metavar="ACTION", help="the actions it may call (default: all)")
    p.add_argument(
        "--concurrency", type=_positive, help="its calls in progress (default: DENSEFACE_KEY_CONCURRENCY)"
    )
    p.set_defaults(func=_guarded(cmd_add))

    p = commands.add_parser("list", help="the keys, their state, limits and used counts")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_guarded(cmd_list))

    p = commands.add_parser("set", help="change a key's state, quota, rate or actions")
    p.add_argument("secret_id")
    p.add_argument("--state", choices=STATES)
    p.add_argument("--quota", type=int, help="successful calls in all; -1: no limit")
    p.add_argument(
        "--qps",
        type=_rate_or_default,
        default=_UNCHANGED,
        help="its rate limit, requests/s; 0: unlimited; default: the server's DENSEFACE_QPS",
    )
    p.add_argument("--actions", nargs="+", metavar="ACTION", help="the actions it may call; all: every one")
    p.add_argument("--concurrency", type=int, help="its calls in progress; 0: the server's default")
    p.set_defaults(func=_guarded(cmd_set))

    p = commands.add_parser("usage", help="calls per key, UTC day, action and outcome")
    p.add_argument("secret_id", nargs="?")
    p.add_argument("--since", type=_day, help="from this UTC day on (YYYY-MM-DD)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_guarded(cmd_usage))


__all__ = ["add_parser"]
