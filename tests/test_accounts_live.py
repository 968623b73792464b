"""Quotas, account states, allowed actions, usage and the embedded store's faults on a real
``denseface serve`` (SQLite in its config dir), called with the official Python SDK; keys changed
with the real ``denseface keys`` command while the server runs."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from denseface.rpc.credentials import Credential, write_keys_file
from denseface.server.metrics import key_label
from tests import serving
from tests.conftest import shared

KEY = "denseface-test-secret-key-accounts-0123456789"
QUOTA_ID = "AKIDdensefaceQUOTA000000000000000000"
STATE_ID = "AKIDdensefaceSTATE000000000000000000"
ACTIONS_ID = "AKIDdensefaceACTIONS0000000000000000"
STORE_ID = "AKIDdensefaceSTORE000000000000000000"


@pytest.fixture(scope="module")
def photo() -> str:
    return base64.b64encode(shared("robustness", "face_recognition", "obama-240p.jpg").read_bytes()).decode()


def keys_file(work: Path) -> Path:
    path = work / "keys.toml"
    write_keys_file(
        path,
        [
            Credential(QUOTA_ID, KEY, quota=3),
            Credential(STATE_ID, KEY),
            Credential(ACTIONS_ID, KEY, actions=frozenset({"AnalyzeFace"})),
            Credential(STORE_ID, KEY),
        ],
    )
    return path


def keys_command(work: Path, *args: str) -> str:
    env = {**os.environ, "DENSEFACE_CONFIG_DIR": str(work / "config")}
    env.pop("DENSEFACE_REDIS_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "denseface", "keys", "--credentials", str(work / "keys.toml"), *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def until_code(call: Callable[[], str], code: str, seconds: float) -> float:
    """Seconds until ``call()`` answers ``code`` (fails after ``seconds``)."""
    started = time.monotonic()
    while (seen := call()) != code:
        if time.monotonic() - started > seconds:
            pytest.fail(f"still {seen}, not {code}, after {seconds} s")
        time.sleep(0.2)
    return time.monotonic() - started


def test_quota_states_actions_and_usage_surviving_a_restart(
    model_dir: Path, tmp_path: Path, photo: str
) -> None:
    keys = keys_file(tmp_path)
    server = serving.start(model_dir, tmp_path, keys)
    try:
        quota = serving.client(server, QUOTA_ID, KEY)
        assert serving.code_of(quota) == "InvalidParameterValue.ImageEmpty"  # failed: consumes nothing
        with ThreadPoolExecutor(5) as pool:  # racing calls: exactly the quota gets through
            codes = list(pool.map(lambda _: serving.code_of(quota, Image=photo), range(5)))
        assert sorted(codes) == ["OK"] * 3 + ["ResourceUnavailable.LowBalance"] * 2, codes

        actions = serving.client(server, ACTIONS_ID, KEY)
        assert serving.code_of(actions, Image=photo) == "ResourceUnavailable.NotReady"

        state = serving.client(server, STATE_ID, KEY)
        for value, code in [
            ("stopped", "ResourceUnavailable.StopUsing"),
            ("in-arrears", "ResourceUnavailable.InArrears"),
            ("recovered", "ResourceUnavailable.Recover"),
            ("active", "InvalidParameterValue.ImageEmpty"),  # through the gate again
        ]:
            keys_command(tmp_path, "set", STATE_ID, "--state", value)
            assert until_code(lambda: serving.code_of(state), code, 6) < 5.5  # no restart
            if value == "stopped":  # authentication and the request's own checks come first
                wrong = serving.client(server, STATE_ID, KEY + "x")
                assert serving.code_of(wrong) == "AuthFailure.SignatureFailure"
                assert serving.code_of(state, Mode=2) == code  # the gate precedes the parameters
        assert oct(keys.stat().st_mode & 0o777) == "0o600"

        text = serving.metrics(server)
        labels = f'action="AnalyzeDenseLandmarks",code="OK",key="{key_label(QUOTA_ID)}"'
        ok = f"denseface_key_calls_total{{{labels}}} 3.0"
        assert ok in text
    finally:
        serving.stop(server)

    server = serving.start(model_dir, tmp_path, keys)  # the same config dir: the same SQLite file
    try:
        assert (
            serving.code_of(serving.client(server, QUOTA_ID, KEY), Image=photo)
            == "ResourceUnavailable.LowBalance"
        )
    finally:
        serving.stop(server)
    rows = json.loads(keys_command(tmp_path, "usage", QUOTA_ID, "--json", "--since", "2000-01-01"))
    counts = {row["code"]: row["calls"] for row in rows}
    assert counts == {"OK": 3, "ResourceUnavailable.LowBalance": 3, "InvalidParameterValue.ImageEmpty": 1}
    listed = {row["SecretId"]: row for row in json.loads(keys_command(tmp_path, "list", "--json"))}
    assert (listed[QUOTA_ID]["Used"], listed[QUOTA_ID]["Quota"]) == (3, 3)
    assert listed[ACTIONS_ID]["Actions"] == ["AnalyzeFace"]


def test_store_faults_answer_their_codes_and_recover(model_dir: Path, tmp_path: Path) -> None:
    keys = keys_file(tmp_path)
    database = tmp_path / "config" / "usage.sqlite3"
    server = serving.start(model_dir, tmp_path, keys)
    sdk = serving.client(server, STORE_ID, KEY)
    passes = "InvalidParameterValue.ImageEmpty"  # through the gate: the store answered and admitted
    try:
        assert serving.code_of(sdk) == passes
        with sqlite3.connect(database) as db:  # a record denseface did not write
            db.execute("UPDATE accounts SET used = 'x' WHERE secret_id = ?", (STORE_ID,))
        assert serving.code_of(sdk) == "ResourcesSoldOut.ChargeStatusException"
        assert "malformed store records" in server.log()
        with sqlite3.connect(database) as db:
            db.execute("UPDATE accounts SET used = 0 WHERE secret_id = ?", (STORE_ID,))
        assert serving.code_of(sdk) == passes

        locker = sqlite3.connect(database, isolation_level=None)  # another process holds the file
        locker.execute("BEGIN EXCLUSIVE")
        started = time.monotonic()
        assert serving.code_of(sdk) == "ResourceUnavailable.UnknownStatus"
        assert time.monotonic() - started < 5  # bounded: the 2 s busy timeout
        locker.execute("ROLLBACK")
        locker.close()
        assert serving.code_of(sdk) == passes  # recovered, no restart

        with sqlite3.connect(database) as db:  # the store emptied under the server
            db.execute("DELETE FROM meta")
        assert serving.code_of(sdk) == "ResourceUnavailable.NotExist"
    finally:
        serving.stop(server)
    server = serving.start(model_dir, tmp_path, keys)  # a start sets the store up again
    try:
        assert serving.code_of(serving.client(server, STORE_ID, KEY)) == passes
    finally:
        serving.stop(server)
