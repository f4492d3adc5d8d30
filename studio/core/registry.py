"""Backends declared as entry points, found without importing them, imported on first use.

What Studio must know of a backend before importing it (the model formats it loads)
comes from its package's manifest, `studio-plugin.toml` beside the package's
`__init__.py`, read as data:

    [backends.my-backend]
    formats = ["safetensors"]
"""

from __future__ import annotations

import enum
import logging
import threading
import tomllib
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from importlib.metadata import EntryPoint, entry_points
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING

from studio.core.backend import Backend
from studio.core.errors import UserFacingError, first_line
from studio.core.executors import RemoteError

GROUP = "studio.backends"
MANIFEST = "studio-plugin.toml"
if TYPE_CHECKING:
    from studio.core.models import ModelLibrary

log = logging.getLogger(__name__)


class BackendStatus(enum.Enum):
    DISCOVERED = "discovered"  # declared, code not imported yet
    READY = "ready"  # imported and instantiated
    FAILED = "failed"  # import, instantiation or a model load failed


class BackendUnavailable(RuntimeError, UserFacingError):
    """A backend that is unknown or failed; the message says which and why."""


@dataclass
class BackendRecord:
    """What the registry knows of one declared backend."""

    id: str
    entry_point: EntryPoint = field(repr=False)
    status: BackendStatus = BackendStatus.DISCOVERED
    error: str = ""
    traceback: str = ""
    instance: Backend | None = None

    @property
    def target(self) -> str:
        """Where the code is: "package.module:Class"."""
        return self.entry_point.value

    @cached_property
    def formats(self) -> tuple[str, ...]:
        """The model formats it loads, from its package's manifest (no plugin code runs;
        a missing or broken manifest means none)."""
        package = self.entry_point.module.partition(".")[0]
        try:  # find_spec of a top-level package locates it without running its __init__
            spec = find_spec(package)
        except (ImportError, ValueError):
            return ()
        folders = spec.submodule_search_locations if spec is not None else None
        found = [Path(f) / MANIFEST for f in folders or () if (Path(f) / MANIFEST).is_file()]
        if not found:
            return ()  # no manifest (or a plain module, not a package): no formats
        try:
            manifest = tomllib.loads(found[0].read_text(encoding="utf-8"))
            formats = manifest["backends"][self.id].get("formats", [])
        except Exception as error:  # unreadable, bad TOML, wrong types, backend not listed
            log.warning("backend %r: cannot read its %s: %s", self.id, MANIFEST, error)
            return ()
        return tuple(str(f) for f in formats) if isinstance(formats, list) else ()

    @property
    def distribution(self) -> str:
        dist = self.entry_point.dist
        return dist.name if dist is not None else ""


class PluginRegistry:
    """Discovers backends from the `studio.backends` entry-point group.

    Discovery reads only package metadata; a backend's module is imported the
    first time `get` asks for it. A backend that fails is recorded as failed,
    with its error and traceback, and the others keep working.
    """

    def __init__(self, declared: Iterable[EntryPoint] | None = None) -> None:
        self._lock = threading.RLock()
        self._records: dict[str, BackendRecord] = {}
        self.model_library: Callable[[], ModelLibrary] | None = None  # handed to backends
        for point in entry_points(group=GROUP) if declared is None else declared:
            if point.name in self._records:
                log.warning("backend %r is declared twice; keeping the first", point.name)
                continue
            self._records[point.name] = BackendRecord(point.name, point)

    def ids(self) -> list[str]:
        return sorted(self._records)

    def records(self) -> list[BackendRecord]:
        with self._lock:
            return [self._records[i] for i in self.ids()]

    def record(self, backend_id: str) -> BackendRecord:
        with self._lock:
            try:
                return self._records[backend_id]
            except KeyError:
                known = ", ".join(self.ids()) or "none is installed"
                raise BackendUnavailable(
                    f"unknown backend {backend_id!r} (installed: {known})"
                ) from None

    def get(self, backend_id: str) -> Backend:
        """The backend's instance, importing its code on first use."""
        with self._lock:
            record = self.record(backend_id)
            if record.status is BackendStatus.FAILED:
                raise BackendUnavailable(f"backend {backend_id!r} failed: {record.error}")
            if record.instance is None:
                record.instance = self._instantiate(record)
            return record.instance

    def mark_failed(self, backend_id: str, error: BaseException) -> None:
        """Record a failure found after import (e.g. a model that won't load)."""
        with self._lock:
            record = self.record(backend_id)
            record.error = first_line(error)
            remote = error.details if isinstance(error, RemoteError) else ""
            record.traceback = remote or "".join(traceback.format_exception(error))

    def _instantiate(self, record: BackendRecord) -> Backend:
        try:
            cls = record.entry_point.load()
            instance = cls()
            if not isinstance(instance, Backend):
                raise TypeError(f"{record.target} is not a studio Backend")
            if self.model_library is not None:
                instance.model_library = self.model_library
        except (Exception, SystemExit) as error:  # a plugin's sys.exit must not end the app
            record.status = BackendStatus.FAILED
            exited = isinstance(error, SystemExit)
            record.error = f"it exited (code {error.code})" if exited else first_line(error)
            record.traceback = "".join(traceback.format_exception(error))
            log.error("backend %r failed to load:\n%s", record.id, record.traceback)
            raise BackendUnavailable(f"backend {record.id!r} failed: {record.error}") from error
        record.status = BackendStatus.READY
        return instance
