"""Where Studio keeps its data, settings, caches and logs."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "Studio"
HOME_ENV = "STUDIO_HOME"


class DataFolderError(ValueError):
    """A folder Studio must keep its files in cannot be made or written; says which, why."""


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
        """Make the folders and check that each can be written (a database, a log and
        settings are written before anything else happens); raises DataFolderError."""
        for folder in (self.data, self.config, self.cache, self.logs):
            try:
                folder.mkdir(parents=True, exist_ok=True)
                with tempfile.TemporaryFile(dir=folder):
                    pass
            except OSError as error:
                why = _why(folder, error)
                raise DataFolderError(f"cannot keep files in {folder}: {why}") from error
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


def _why(folder: Path, error: OSError) -> str:
    """The cause for a person: a file where a folder must be, or the system's reason."""
    blocking = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        return f"{blocking} is a file, not a folder"
    return error.strerror or str(error)
