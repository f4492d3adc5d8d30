"""Where Studio keeps its data, settings, caches and logs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "Studio"
HOME_ENV = "STUDIO_HOME"


@dataclass(frozen=True)
class StudioPaths:
    data: Path  # history database and images
    config: Path  # settings
    cache: Path  # thumbnails and other things that can be rebuilt
    logs: Path

    @classmethod
    def resolve(cls, data_dir: str | os.PathLike[str] | None = None) -> StudioPaths:
        """`--data-dir`, else `$STUDIO_HOME`, else the platform's user folders.

        With a home folder everything lives under it, so tests and portable
        installs never touch a real user's history.
        """
        home = data_dir or os.environ.get(HOME_ENV)
        if home:
            root = Path(home).expanduser().resolve()
            return cls(root / "data", root / "config", root / "cache", root / "logs")
        dirs = platformdirs.PlatformDirs(APP_NAME, appauthor=False)
        return cls(
            Path(dirs.user_data_dir),
            Path(dirs.user_config_dir),
            Path(dirs.user_cache_dir),
            Path(dirs.user_log_dir),
        )

    def ensure(self) -> StudioPaths:
        for folder in (self.data, self.config, self.cache, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        return self

    @property
    def images(self) -> Path:
        return self.data / "images"

    @property
    def database(self) -> Path:
        return self.data / "history.sqlite3"

    @property
    def settings_file(self) -> Path:
        return self.config / "settings.json"

    @property
    def thumbnails(self) -> Path:
        return self.cache / "thumbnails"

    @property
    def models(self) -> Path:
        """The default model folder; the settings may name more."""
        return self.data / "models"

    @property
    def model_hashes(self) -> Path:
        return self.cache / "model-hashes.json"
