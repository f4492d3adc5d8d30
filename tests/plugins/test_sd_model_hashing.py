"""The SD plugin's lookups hash no model file; its metadata finds the cached hash."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.model_library import SD_TENSOR, count_hashing, short
from support.model_library import library_files as any_library_files

from sd_backends import library
from sd_backends.architecture import LORA
from sd_backends.cli import _exportable
from studio.core.app import Core
from studio.core.models import ModelLibrary


def library_files(folder: Path) -> dict[str, Path]:
    """The shared small library, its files named as SD checkpoints (else refused)."""
    return any_library_files(folder, SD_TENSOR)


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return count_hashing(monkeypatch)


def test_finding_models_and_addons_hashes_nothing(tmp_path, hashed) -> None:
    files = library_files(tmp_path / "models")
    models = lambda: ModelLibrary([tmp_path / "models"], [], tmp_path / "hashes.json")  # noqa: E731
    assert library.find(models, "dream", ("safetensors",)).path == files["dream"]
    assert library.find(models, "", ("safetensors",)).path == files["dream"]  # the first
    assert library.find_addon(models, "ink", LORA, ("safetensors",)).path == files["ink"]
    assert library.describe(models().find("other")).hash == ""  # listed: no hash
    assert hashed == []


def test_the_cli_finds_models_without_hashing(tmp_path, hashed) -> None:
    with Core.open(tmp_path / "data") as core:
        files = library_files(core.paths.models)
        assert core.backend_for_model("dream") in core.registry.ids()  # generate --model
        assert _exportable(core, "dream").path == files["dream"]  # sd-export-onnx
    assert hashed == []


def test_model_info_finds_the_hash_computed_ahead(tmp_path, hashed) -> None:
    files = library_files(tmp_path / "models")
    models = lambda: ModelLibrary([tmp_path / "models"], [], tmp_path / "hashes.json")  # noqa: E731
    found = models().find("dream")
    models().short_hash(found)  # as the engine does while the model loads
    assert library.describe(found, models).hash == short(files["dream"])
    assert hashed == ["dream.safetensors"]
