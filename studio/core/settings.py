"""User settings: a JSON file in the user config folder, with defaults that work offline."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.core.files import atomic_write_bytes

log = logging.getLogger(__name__)


@dataclass
class Settings:
    backend: str = "shapes"  # the built-in model; if missing, the first installed backend
    model: str = ""  # "" = the backend's default model
    count: int = 4
    candidates: int = 16
    width: int = 64
    height: int = 64
    steps: int = 0
    guidance: float = 0.0  # 0 = the backend's default
    sampler: str = ""  # "" = the backend's default
    executor: str = "process"  # where the app runs backends: "process" (a worker) or "thread"
    model_folders: list[str] = field(default_factory=list)  # searched beside the default one
    model_paths: list[str] = field(default_factory=list)  # models added one by one
    export_folder: str = ""  # "" = ~/Pictures/Studio
    export_format: str = "png"
    export_name_template: str = "{date}_{seed}_{prompt}"
    theme: str = "system"  # system | light | dark
    window_geometry: str = ""  # the app's window and docks, as Qt saves them (base64)
    window_state: str = ""

    @classmethod
    def load(cls, path: Path) -> Settings:
        """Read settings; a missing or unreadable file gives the defaults (kept as .bad)."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("settings file is not a JSON object")
            return cls._from_dict(data)
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError, TypeError) as error:
            log.warning("ignoring unreadable settings %s: %s", path, error)
            with contextlib.suppress(OSError):  # keep the bad file for the user to look at
                path.replace(path.with_suffix(".bad"))
            return cls()

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> Settings:
        """Keep the values of the right type; a bad value falls back to its default."""
        defaults = cls()
        values = {}
        for f in dataclasses.fields(cls):
            value, expected = data.get(f.name), type(getattr(defaults, f.name))
            if expected is float and type(value) is int:
                value = float(value)
            if type(value) is expected:
                values[f.name] = value
        return cls(**values)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(dataclasses.asdict(self), indent=2, ensure_ascii=False)
        atomic_write_bytes(path, text.encode("utf-8"))
