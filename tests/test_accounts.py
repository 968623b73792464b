"""The account state in the embedded store (real SQLite files), the gate's order of checks, and the
keys file's new fields, reloading and atomic rewriting. The shared Redis store is in test_redis_store.py,
real servers in test_accounts_live.py and test_replicas.py."""

from __future__ import annotations

import asyncio
import sqlite3
import stat
from pathlib import Path

import pytest

from denseface.rpc.accounts import Gate
from denseface.rpc.accounts.sqlite import SqliteStore
from denseface.rpc.accounts.store import Admission, UsageRow
from denseface.rpc.credentials import (
    Credential,
    CredentialConfigError,
    CredentialStore,
    KeysFile,
    write_keys_file,
)
from denseface.rpc.envelope import ApiError

DAY = "2026-12-01"
SECRET = "s3cretKEYs3cretKEYs3cretKEY12345"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def admission(request_id: str, *, qps: float | None = None, quota: int | None = None) -> Admission:
    return Admission("AKIDa", request_id, "AnalyzeDenseLandmarks", qps, quota)


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_quota_counts_only_settled_successes(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SqliteStore(tmp_path / "u.sqlite3")
        codes = [await store.admit(admission(f"r{i}", quota=2), day=DAY) for i in range(4)]
        # two held, the others refused while those are in flight
        assert codes == ["OK", "OK", "ResourceUnavailable.LowBalance", "ResourceUnavailable.LowBalance"]
        assert await store.settle(
            "AKIDa", "r0", "AnalyzeDenseLandmarks", "FailedOperation.ImageDecodeFailed", day=DAY
        )
        assert await store.settle("AKIDa", "r1", "AnalyzeDenseLandmarks", "OK", day=DAY)
        assert not await store.settle("AKIDa", "r1", "AnalyzeDenseLandmarks", "OK", day=DAY)  # counted once
        assert await store.used(["AKIDa", "AKIDb"]) == {"AKIDa": 1, "AKIDb": 0}
        assert await store.admit(admission("r4", quota=2), day=DAY) == "OK"  # the failure gave its unit back
        assert await store.settle("AKIDa", "r4", "AnalyzeDenseLandmarks", "OK", day=DAY)
        assert await store.admit(admission("r5", quota=2), day=DAY) == "ResourceUnavailable.LowBalance"
        rows = await store.usage()
        assert {(r.code, r.calls) for r in rows} == {
            ("OK", 2),
            ("FailedOperation.ImageDecodeFailed", 1),
            ("ResourceUnavailable.LowBalance", 3),
        }
        await store.close()

    run(scenario())


def test_holds_of_a_killed_server_expire(tmp_path: Path) -> None:
    clock = Clock()

    async def scenario() -> None:
        store = SqliteStore(tmp_path / "u.sqlite3", hold=30, clock=clock)
        assert await store.admit(admission("lost", quota=1), day=DAY) == "OK"  # never settled
        assert await store.admit(admission("next", quota=1), day=DAY) == "ResourceUnavailable.LowBalance"
        clock.now += 31
        assert await store.admit(admission("next2", quota=1), day=DAY) == "OK"
        assert not await store.settle("AKIDa", "lost", "AnalyzeDenseLandmarks", "OK", day=DAY)  # expired
        assert await store.used(["AKIDa"]) == {"AKIDa": 0}

    run(scenario())


def test_token_bucket_in_the_store(tmp_path: Path) -> None:
    clock = Clock()

    async def scenario() -> None:
        store = SqliteStore(tmp_path / "u.sqlite3", clock=clock)
        codes = [await store.admit(admission(f"r{i}", qps=2), day=DAY) for i in range(3)]
        assert codes == ["OK", "OK", "RequestLimitExceeded"]
        clock.now += 0.5
        assert await store.admit(admission("r3", qps=2), day=DAY) == "OK"
        assert await store.admit(admission("r4", qps=2), day=DAY) == "RequestLimitExceeded"
        assert await store.admit(admission("r0", qps=2), day=DAY) == "OK"  # a retried admit holds already

    run(scenario())


def test_two_processes_sharing_a_file_hold_the_quota_exactly(tmp_path: Path) -> None:
    async def scenario() -> list[str]:
        a, b = SqliteStore(tmp_path / "u.sqlite3"), SqliteStore(tmp_path / "u.sqlite3")
        stores = [a, b] * 20
        return list(
            await asyncio.gather(
                *(s.admit(admission(f"r{i}", quota=30), day=DAY) for i, s in enumerate(stores))
            )
        )

    codes = run(scenario())
    assert codes.count("OK") == 30  # type: ignore[union-attr]
    assert codes.count("ResourceUnavailable.LowBalance") == 10  # type: ignore[union-attr]


def test_marker_missing_malformed_record_and_locked_file(tmp_path: Path) -> None:
    path = tmp_path / "u.sqlite3"

    async def scenario() -> None:
        store = SqliteStore(path, busy_timeout=0.2)
        assert await store.admit(admission("r0"), day=DAY) == "OK"
        with sqlite3.connect(path) as db:
            db.execute("UPDATE accounts SET used = 'x' WHERE secret_id = 'AKIDa'")
        assert await store.admit(admission("r1"), day=DAY) == "ResourcesSoldOut.ChargeStatusException"
        with sqlite3.connect(path) as db:
            db.execute("UPDATE accounts SET used = 0")
            db.execute("DELETE FROM meta")
        assert await store.admit(admission("r2"), day=DAY) == "ResourceUnavailable.NotExist"
        assert await SqliteStore(path).admit(admission("r3"), day=DAY) == "OK"  # a server start sets it up
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        from denseface.rpc.accounts import StoreUnavailable

        with pytest.raises(StoreUnavailable):
            await store.admit(admission("r4"), day=DAY)
        other.execute("ROLLBACK")
        assert await store.admit(admission("r4"), day=DAY) == "OK"

    run(scenario())


def test_gate_order_and_codes(tmp_path: Path) -> None:
    async def scenario() -> list[str]:
        store = SqliteStore(tmp_path / "u.sqlite3")
        gate = Gate(store, default_qps=None)
        codes = []
        keys = [
            Credential("AKIDa", SECRET, state="in-arrears", actions=frozenset()),
            Credential("AKIDa", SECRET, state="stopped"),
            Credential("AKIDa", SECRET, state="recovered"),
            Credential("AKIDa", SECRET, actions=frozenset({"DetectFace"})),
            Credential("AKIDa", SECRET, quota=0, qps=1),
            Credential("AKIDa", SECRET, quota=0, qps=1),
        ]
        for i, key in enumerate(keys):
            with pytest.raises(ApiError) as info:
                await gate.admit(key, "AnalyzeDenseLandmarks", f"r{i}")
            codes.append(info.value.code)
        ticket = await gate.admit(Credential("AKIDb", SECRET, quota=1), "AnalyzeDenseLandmarks", "rb")
        await gate.settle(ticket, "OK")
        rows = await store.usage("AKIDa", since=DAY[:8] + "01")
        assert sum(r.calls for r in rows) == 6  # every refusal counted with its code
        assert await store.usage("AKIDb") == [UsageRow("AKIDb", ticket.day, "AnalyzeDenseLandmarks", "OK", 1)]
        return codes

    assert run(scenario()) == [
        "ResourceUnavailable.InArrears",  # the state comes before the actions
        "ResourceUnavailable.StopUsing",
        "ResourceUnavailable.Recover",
        "ResourceUnavailable.NotReady",
        "ResourceUnavailable.LowBalance",  # a token was there
        "RequestLimitExceeded",  # the rate comes before the quota
    ]


def test_qps_zero_means_unlimited_for_a_key_as_for_the_server(tmp_path: Path) -> None:
    """``qps = 0`` on a key and ``DENSEFACE_QPS=0`` (the gate's default) both mean no rate limit; a
    key's rate of 1 beside them is still applied."""

    async def scenario() -> tuple[list[str], list[str], list[str]]:
        async def codes(gate: Gate, key: Credential, prefix: str) -> list[str]:
            out = []
            for i in range(5):
                try:
                    ticket = await gate.admit(key, "AnalyzeDenseLandmarks", f"{prefix}{i}")
                    await gate.settle(ticket, "OK")
                    out.append("OK")
                except ApiError as error:
                    out.append(error.code)
            return out

        strict_default = Gate(SqliteStore(tmp_path / "a.sqlite3"), default_qps=1)
        unlimited_default = Gate(SqliteStore(tmp_path / "b.sqlite3"), default_qps=None)
        return (
            await codes(strict_default, Credential("AKIDa", SECRET, qps=0), "a"),
            await codes(unlimited_default, Credential("AKIDb", SECRET), "b"),
            await codes(strict_default, Credential("AKIDc", SECRET, qps=1), "c"),
        )

    key_zero, server_zero, key_one = run(scenario())  # type: ignore[misc]
    assert key_zero == server_zero == ["OK"] * 5
    assert key_one[0] == "OK"
    assert "RequestLimitExceeded" in key_one


def test_a_key_with_qps_zero_is_read_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    path.write_text(f'[[keys]]\nsecret_id = "AKIDa"\nsecret_key = "{SECRET}"\nqps = 0\n')
    path.chmod(0o600)  # a keys file others may read is refused
    assert KeysFile(path).get("AKIDa") == Credential("AKIDa", SECRET, qps=0.0)


def test_a_success_the_store_cannot_count_is_not_answered_as_one(tmp_path: Path) -> None:
    path = tmp_path / "u.sqlite3"

    async def scenario() -> None:
        gate = Gate(SqliteStore(path, busy_timeout=0.2), default_qps=None)
        ticket = await gate.admit(Credential("AKIDa", SECRET), "AnalyzeDenseLandmarks", "r0")
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(ApiError) as info:
            await gate.settle(ticket, "OK")
        assert info.value.code == "ResourceUnavailable.UnknownStatus"
        await gate.settle(ticket, "FailedOperation.ImageDecodeFailed")  # a failure: logged, not raised
        other.execute("ROLLBACK")

    run(scenario())


# ------------------------------------------------------------------------------------------ keys file
def test_new_fields_are_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    path.write_text(
        f'[[keys]]\nsecret_id = "AKIDa"\nsecret_key = "{SECRET}"\nquota = 30\nstate = "stopped"\n'
        'actions = ["AnalyzeDenseLandmarks"]\n'
    )
    (key,) = CredentialStore.from_toml(path)
    assert (key.quota, key.state, key.actions) == (30, "stopped", frozenset({"AnalyzeDenseLandmarks"}))
    for bad, what in [
        ("quota = -1", "quota"),
        ("quota = 1.5", "quota"),
        ('state = "paused"', "state"),
        ('actions = "AnalyzeDenseLandmarks"', "actions"),
        ("color = 1", "unknown field"),
    ]:
        path.write_text(f'[[keys]]\nsecret_id = "AKIDa"\nsecret_key = "{SECRET}"\n{bad}\n')
        with pytest.raises(CredentialConfigError, match=what):
            CredentialStore.from_toml(path)


def test_keys_file_is_rewritten_atomically_0600_and_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    clock = Clock()
    first = Credential("AKIDa", SECRET, qps=2.5, quota=3, actions=frozenset({"AnalyzeDenseLandmarks"}))
    write_keys_file(path, [first])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    keys = KeysFile(path, environ={}, clock=clock)
    assert keys.get("AKIDa") == first  # the written file reads back the same
    write_keys_file(path, [first, Credential("AKIDb", SECRET, state="in-arrears")])
    assert keys.get("AKIDb") is None  # not checked again within the interval
    clock.now += 1.0
    key = keys.get("AKIDb")
    assert key is not None
    assert key.state == "in-arrears"
    assert [p.name for p in tmp_path.iterdir()] == ["keys.toml"]  # no temporary file left
    path.write_text("[[keys]]\nsecret_id = 1\n")  # a broken edit: the previous keys stay in force
    clock.now += 1.0
    assert keys.get("AKIDb") is not None


def test_keys_add_prints_the_secret_once_and_never_logs_it(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from denseface.cli import main

    monkeypatch.setenv("DENSEFACE_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("DENSEFACE_REDIS_URL", raising=False)
    path = tmp_path / "keys.toml"
    keys = ["keys", "--credentials", str(path)]
    caplog.set_level("DEBUG")
    assert main([*keys, "add", "--quota", "5", "--actions", "AnalyzeDenseLandmarks"]) == 0
    out = capsys.readouterr().out
    secret_id, secret_key = (line.split()[1] for line in out.splitlines())
    (key,) = CredentialStore.from_toml(path)
    assert (key.secret_id, key.secret_key, key.quota) == (secret_id, secret_key, 5)
    assert key.actions == frozenset({"AnalyzeDenseLandmarks"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert secret_id in caplog.text
    assert secret_key not in caplog.text
    assert main([*keys, "set", secret_id, "--quota", "-1", "--actions", "all"]) == 0
    (key,) = CredentialStore.from_toml(path)
    assert (key.quota, key.actions) == (None, None)
    assert main([*keys, "set", "AKIDnobody", "--state", "stopped"]) == 1
    assert main([*keys, "list"]) == 0
    assert secret_key not in capsys.readouterr().out  # listed without the secret
