"""Wiring the core together: paths, settings, logging, history, plugins and the engine."""

from __future__ import annotations

import logging
import logging.handlers
import os
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING

from studio.core.engine import Engine
from studio.core.executors import PROCESS, RAY, THREAD, Executor, InThreadExecutor
from studio.core.history import HistoryStore, ReconcileReport
from studio.core.history_recovery import Recovery, open_history
from studio.core.inputs import InputPicture
from studio.core.model_backends import examine
from studio.core.model_files import ModelFile, ModelFileError, identify
from studio.core.models import ModelLibrary
from studio.core.paths import StudioPaths
from studio.core.registry import BackendStatus, PluginRegistry
from studio.core.request import GenerationRequest
from studio.core.settings import Settings
from studio.core.thumbnails import ThumbnailCache

if TYPE_CHECKING:
    from PIL import Image

LOG_FILE = "studio.log"
log = logging.getLogger(__name__)


@dataclass
class Core:
    """Everything a front end (the app or the CLI) works with."""

    paths: StudioPaths
    settings: Settings
    history: HistoryStore
    registry: PluginRegistry
    engine: Engine
    thumbnails: ThumbnailCache
    reconciled: Future[ReconcileReport]  # rows and files brought in step, in the background
    log_handler: logging.Handler | None = None
    recovery: Recovery | None = None  # the history database was damaged and rebuilt

    @classmethod
    def open(
        cls, data_dir: str | os.PathLike[str] | None = None, executor: str | None = THREAD
    ) -> Core:
        """The core on `data_dir`. Backends run on the engine's thread (`THREAD`: the CLI,
        tests), in a worker process (`PROCESS`), on a Ray cluster ("ray:ADDRESS"), or as
        the settings say (None: the app)."""
        paths = StudioPaths.resolve(data_dir).ensure()
        registry = PluginRegistry()
        settings = Settings.load(paths.settings_file)
        library = partial(_library, paths, settings)
        runner = _executor(executor or settings.executor, registry, library, paths.logs)
        handler = start_logging(paths.logs)
        history, recovery = open_history(paths.data)
        engine = Engine(registry, history, executor=runner)
        reconciled = engine.background(_reconcile, history)
        thumbnails = ThumbnailCache(paths.thumbnails)
        core = cls(
            paths, settings, history, registry, engine, thumbnails, reconciled, handler, recovery
        )
        registry.model_library = core.models
        return core

    def __enter__(self) -> Core:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.engine.shutdown()
        self.history.close()
        if self.log_handler is not None:
            logging.getLogger().removeHandler(self.log_handler)
            self.log_handler.close()

    def models(self) -> ModelLibrary:
        """The model library as the settings describe it now."""
        return _library(self.paths, self.settings)

    def add_model(self, path: Path) -> ModelFile | None:
        """Add a model (a file or a model folder), or a folder of models (returns None),
        to the library, and save the settings. Raises ModelFileError saying why not
        (a pickle, a broken file, a model every backend of its format refuses)."""
        path = path.expanduser().resolve()
        if not path.exists():
            raise ModelFileError(f"no such file or folder: {path}")
        try:
            found: ModelFile | None = identify(path)
        except ModelFileError:
            if not path.is_dir() or (path / "model_index.json").exists():
                raise
            found = None  # a folder of models
        verdict = examine(self.registry, found) if found is not None else None
        if verdict is not None and verdict[1].refused:
            raise ModelFileError(verdict[1].refused)
        listed = self.settings.model_paths if found else self.settings.model_folders
        if str(path) not in listed:
            listed.append(str(path))
            self.settings.save(self.paths.settings_file)
        return found

    def backend_for_model(self, model: str, backend_id: str = "") -> str:
        """The backend to run `model` (a path or a library name) with: `backend_id` if
        given, else the first installed one whose manifest declares its format and that
        can use it (`Backend.examine`). Raises ModelFileError saying why none can, before
        anything loads. A backend whose manifest declares no format has models of its
        own: `model` is its to find."""
        records = {r.id: r for r in self.registry.records()}  # manifests: no import yet
        if backend_id and not (backend_id in records and records[backend_id].formats):
            return backend_id  # unknown (said later), or a backend of its own models
        found = self.models().find(model)
        ids = (
            [backend_id]
            if backend_id
            else [
                r.id
                for r in records.values()
                if found.format in r.formats and r.status is not BackendStatus.FAILED
            ]
        )
        if not ids:
            raise ModelFileError(f"no installed backend runs {found.format} models ({found.name})")
        verdict = examine(self.registry, found, ids)
        if verdict is None:
            return ids[0]  # none could say (logged): loading it will
        if verdict[1].refused:
            raise ModelFileError(verdict[1].refused)
        return verdict[0]

    def default_backend(self) -> str:
        """The backend from the settings if installed, else the first installed one."""
        ids = self.registry.ids()
        if self.settings.backend in ids:
            return self.settings.backend
        return ids[0] if ids else ""

    def add_input(
        self, source: Path | bytes | Image.Image | IO[bytes], *, mask: bool = False
    ) -> InputPicture:
        """Store a picture to give requests as `image` (or `mask`: white = repaint), once
        per content; raises InputError saying why it cannot be used."""
        return self.history.inputs.add(source, mask=mask)

    def request(self, prompt: str, **fields: object) -> GenerationRequest:
        """A request with the user's default settings for every field not given."""
        s = self.settings
        given = {k: v for k, v in fields.items() if v is not None}
        count = given.get("count", s.count)
        defaults: dict[str, object] = {
            "count": count,
            "candidates": max(count, s.candidates),  # type: ignore[call-overload]
            "width": s.width,
            "height": s.height,
            "steps": s.steps,
            "guidance": s.guidance,
            "backend": self.default_backend(),
            "model": s.model,
        }
        return GenerationRequest(prompt=prompt, **{**defaults, **given})  # type: ignore[arg-type]


def _library(paths: StudioPaths, settings: Settings) -> ModelLibrary:
    folders = [paths.models, *map(Path, settings.model_folders)]
    added = [Path(p) for p in settings.model_paths]
    return ModelLibrary(folders, added, paths.model_hashes)


def _executor(
    name: str, registry: PluginRegistry, library: Callable[[], ModelLibrary], logs: Path
) -> Executor:
    if name == PROCESS:
        from studio.core.process_executor import ProcessExecutor

        return ProcessExecutor(library, logs)
    if name.startswith(RAY):
        from studio.core.ray_executor import RayExecutor

        return RayExecutor(name.removeprefix(RAY) or "auto", library)
    if name != THREAD:
        raise ValueError(f"unknown executor {name!r}: {THREAD}, {PROCESS} or {RAY}ADDRESS")
    return InThreadExecutor(registry)


def _reconcile(history: HistoryStore) -> ReconcileReport:
    report = history.reconcile()
    history.remove_unused_inputs()  # given for jobs that failed or were cancelled
    if report.missing or report.adopted or report.quarantined:
        log.warning(
            "history: %d files missing, %d adopted, %d moved to quarantine",
            len(report.missing),
            len(report.adopted),
            len(report.quarantined),
        )
    return report


def start_logging(folder: Path) -> logging.Handler:
    """Log to a rotating file in the user log folder."""
    handler = logging.handlers.RotatingFileHandler(
        folder / LOG_FILE, maxBytes=2_000_000, backupCount=3, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return handler
