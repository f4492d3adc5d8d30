"""Settings, data-folder resolution and crash-safe file writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from studio.core.files import TEMP_PREFIX, atomic_open, atomic_write_bytes
from studio.core.paths import StudioPaths
from studio.core.settings import Settings


def test_paths_follow_data_dir_then_studio_home(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "env-home"))
    assert StudioPaths.resolve().data == tmp_path / "env-home" / "data"
    explicit = StudioPaths.resolve(tmp_path / "explicit")
    assert explicit.database == tmp_path / "explicit" / "data" / "history.sqlite3"
    assert explicit.settings_file == tmp_path / "explicit" / "config" / "settings.json"


def test_paths_without_a_home_use_platform_folders(monkeypatch) -> None:
    monkeypatch.delenv("STUDIO_HOME")
    paths = StudioPaths.resolve()
    assert "Studio" in str(paths.data) and "Studio" in str(paths.config)


def test_settings_round_trip_and_defaults(tmp_path) -> None:
    path = tmp_path / "config" / "settings.json"
    assert Settings.load(path) == Settings()
    settings = Settings(backend="fake", count=2, guidance=3.0, model_folders=["/m"])
    settings.save(path)
    assert Settings.load(path) == settings


def test_bad_settings_fall_back_per_value_or_whole_file(tmp_path) -> None:
    path = tmp_path / "settings.json"
    path.write_text('{"count": "many", "guidance": 7, "width": 128, "unknown": 1}')
    loaded = Settings.load(path)
    assert (loaded.count, loaded.guidance, loaded.width) == (Settings().count, 7.0, 128)
    path.write_text("{not json")
    assert Settings.load(path) == Settings()
    assert path.with_suffix(".bad").read_text() == "{not json"


def test_atomic_write_is_complete_or_absent(tmp_path) -> None:
    target = tmp_path / "image.png"
    atomic_write_bytes(target, b"first")
    with pytest.raises(OSError, match="disk full"), atomic_open(target) as handle:
        handle.write(b"partial")
        raise OSError(28, "disk full")
    assert target.read_bytes() == b"first"  # the old file is untouched
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_atomic_write_without_overwrite(tmp_path) -> None:
    target = tmp_path / "a.txt"
    atomic_write_bytes(target, b"one")
    with pytest.raises(FileExistsError), atomic_open(target, overwrite=False) as handle:
        handle.write(b"two")
    assert target.read_bytes() == b"one"
    assert sorted(os.listdir(tmp_path)) == ["a.txt"]
    fresh = Path(tmp_path / "b.txt")
    with atomic_open(fresh, overwrite=False) as handle:
        handle.write(b"two")
    assert fresh.read_bytes() == b"two"
