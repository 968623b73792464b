"""Credentials: TOML/env loading, the local key file, repr hygiene and the per-key rate limiter."""

from __future__ import annotations

import dataclasses
import logging
import re
import stat
from pathlib import Path

import pytest

from denseface.rpc.credentials import (
    ENV_SECRET_ID,
    ENV_SECRET_KEY,
    Credential,
    CredentialConfigError,
    CredentialStore,
    KeysFile,
    ensure_local_credential,
    generate_credential,
)
from tests.test_accounts import Clock

SECRET = "s3cretKEYs3cretKEYs3cretKEY12345"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "keys.toml"
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


def test_repr_hides_the_secret_key() -> None:
    credential = Credential("AKIDabc", SECRET, qps=5.0)
    assert SECRET not in repr(credential)
    assert SECRET not in str(credential)
    assert "AKIDabc" in repr(credential)
    with pytest.raises(dataclasses.FrozenInstanceError):
        credential.enabled = False  # type: ignore[misc]


def test_from_toml(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
[[keys]]
secret_id = "AKIDone"
secret_key = "{SECRET}"
qps = 20

[[keys]]
secret_id = "AKIDtwo"
secret_key = "other-key"
qps = 0.5
enabled = false

[[keys]]
secret_id = "AKIDthree"
secret_key = "third-key"
""",
    )
    store = CredentialStore.from_toml(path)
    assert len(store) == 3
    assert store.get("AKIDone") == Credential("AKIDone", SECRET, 20.0, True)
    assert store.get("AKIDtwo") == Credential("AKIDtwo", "other-key", 0.5, False)
    assert store.get("AKIDthree") == Credential("AKIDthree", "third-key", None, True)
    assert store.get("AKIDnone") is None
    assert "AKIDone" in store
    assert [c.secret_id for c in store] == ["AKIDone", "AKIDtwo", "AKIDthree"]
    assert SECRET not in repr(store)


def test_empty_file_has_no_keys(tmp_path: Path) -> None:
    assert len(CredentialStore.from_toml(write(tmp_path, ""))) == 0


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (f'[[keys]]\nsecret_key = "{SECRET}"\n', "secret_id"),
        ('[[keys]]\nsecret_id = "AKIDa"\n', "secret_key"),
        (f'[[keys]]\nsecret_id = "AKIDa"\nsecret_key = "{SECRET}"\nqps = -1\n', "qps"),
        (f'[[keys]]\nsecret_id = "AKIDa"\nsecret_key = "{SECRET}"\nqps = true\n', "qps"),
        (f'[[keys]]\nsecret_id = "AKIDa"\nsecret_key = "{SECRET}"\nqps = "5"\n', "qps"),
        (f'[[keys]]\nsecret_id = "AKIDa"\nsecret_key = "{SECRET}"\nenabled = "yes"\n', "enabled"),
        (f'[[keys]]\nsecret_id = "AKIDa"\nsecret_key = "{SECRET}"\nsecretkey = "x"\n', "unknown"),
        (f'[[keys]]\nsecret_id = "AKID a"\nsecret_key = "{SECRET}"\n', "whitespace"),
        ('[[keys]]\nsecret_id = "AKIDa"\nsecret_key = ""\n', "secret_key"),
        ('[[keys]]\nsecret_id = 5\nsecret_key = "x"\n', "secret_id"),
        ('keys = "nope"\n', "array of tables"),
        ('keys = ["nope"]\n', "table"),
        ("[[keys]\n", "not valid TOML"),
        (
            f'[[keys]]\nsecret_id = "AKIDa"\nsecret_key = "{SECRET}"\n'
            f'[[keys]]\nsecret_id = "AKIDa"\nsecret_key = "{SECRET}"\n',
            "twice",
        ),
    ],
)
def test_invalid_files(tmp_path: Path, body: str, fragment: str) -> None:
    with pytest.raises(CredentialConfigError, match=fragment) as info:
        CredentialStore.from_toml(write(tmp_path, body))
    assert SECRET not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CredentialConfigError, match="cannot read"):
        CredentialStore.from_toml(tmp_path / "absent.toml")


def test_env() -> None:
    store = CredentialStore.from_env({ENV_SECRET_ID: "AKIDenv", ENV_SECRET_KEY: SECRET})
    assert store.get("AKIDenv") == Credential("AKIDenv", SECRET)
    assert len(CredentialStore.from_env({})) == 0
    with pytest.raises(CredentialConfigError, match="both"):
        CredentialStore.from_env({ENV_SECRET_ID: "AKIDenv"})
    with pytest.raises(CredentialConfigError, match="both"):
        CredentialStore.from_env({ENV_SECRET_KEY: SECRET})


def test_load_combines_file_and_env(tmp_path: Path) -> None:
    path = write(tmp_path, f'[[keys]]\nsecret_id = "AKIDfile"\nsecret_key = "{SECRET}"\n')
    store = CredentialStore.load(path, {ENV_SECRET_ID: "AKIDenv", ENV_SECRET_KEY: "k2"})
    assert {c.secret_id for c in store} == {"AKIDfile", "AKIDenv"}
    assert len(CredentialStore.load(None, {})) == 0
    with pytest.raises(CredentialConfigError, match="twice"):
        CredentialStore.load(path, {ENV_SECRET_ID: "AKIDfile", ENV_SECRET_KEY: "k2"})


def test_generate_credential_shape() -> None:
    credential = generate_credential()
    assert re.fullmatch(r"AKID[A-Za-z0-9]{32}", credential.secret_id)
    assert re.fullmatch(r"[A-Za-z0-9]{32,}", credential.secret_key)
    assert credential.enabled
    assert credential.qps is None
    assert generate_credential() != credential


def test_ensure_local_credential_creates_private_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config_dir = tmp_path / "config" / "denseface"
    with caplog.at_level(logging.DEBUG, logger="denseface"):
        first = ensure_local_credential(config_dir)
    path = config_dir / "credentials.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert re.fullmatch(r"AKID[A-Za-z0-9]{32}", first.secret_id)
    assert len(first.secret_key) >= 32
    assert first.secret_key not in caplog.text
    assert first.secret_id in caplog.text
    # Second start: the same key, and the file is a regular credentials file.
    assert ensure_local_credential(config_dir) == first
    assert CredentialStore.from_toml(path).get(first.secret_id) == first


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_a_keys_file_others_may_access_is_refused_like_ssh_does(tmp_path: Path, mode: int) -> None:
    first = ensure_local_credential(tmp_path)
    path = tmp_path / "credentials.toml"
    path.chmod(mode)
    for load in (lambda: ensure_local_credential(tmp_path), lambda: KeysFile(path, environ={})):
        with pytest.raises(CredentialConfigError) as info:
            load()
        message = str(info.value)
        assert f"permissions {mode:04o} for {path} are too open" in message
        assert f"chmod 600 {path}" in message  # says how to fix it
        assert first.secret_key not in message
    path.chmod(0o600)
    assert KeysFile(path, environ={}).get(first.secret_id) == first


def test_a_keys_file_opened_to_others_later_is_not_reloaded(tmp_path: Path) -> None:
    clock = Clock()
    path = write(tmp_path, f'[[keys]]\nsecret_id = "AKIDa"\nsecret_key = "{SECRET}"\n')
    keys = KeysFile(path, environ={}, clock=clock)
    path.write_text(f'[[keys]]\nsecret_id = "AKIDb"\nsecret_key = "{SECRET}"\n')
    path.chmod(0o644)
    clock.now += 1.0
    assert keys.get("AKIDa") is not None  # refused: the previous keys stay in force
    assert keys.get("AKIDb") is None
    path.chmod(0o600)  # fixed: a change of mode alone is seen and reloaded
    clock.now += 1.0
    assert keys.get("AKIDa") is None
    assert keys.get("AKIDb") is not None


def test_ensure_local_credential_needs_an_enabled_key(tmp_path: Path) -> None:
    path = tmp_path / "credentials.toml"
    path.write_text(f'[[keys]]\nsecret_id = "AKIDoff"\nsecret_key = "{SECRET}"\nenabled = false\n')
    path.chmod(0o600)
    with pytest.raises(CredentialConfigError, match="no enabled key"):
        ensure_local_credential(tmp_path)
