"""Where a job's backend runs: behind the engine, one interface, several places.

The engine's worker thread hands each job to an executor and gets candidates back, with
progress, previews and cancellation through the same `GenerationContext`. The executor
keeps at most one backend and model loaded.

- `InThreadExecutor`: the backend runs on the engine's own thread (tests, the CLI).
- `studio.core.process_executor.ProcessExecutor`: in a worker process (the app's default).
"""

from __future__ import annotations

import gc
import logging
import traceback
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

from studio.core.backend import Backend, Cancelled, Candidate, GenerationContext, ModelInfo
from studio.core.errors import UserFacingError
from studio.core.load_progress import LoadingReport
from studio.core.request import GenerationRequest

if TYPE_CHECKING:
    from studio.core.registry import PluginRegistry

log = logging.getLogger(__name__)
THREAD, PROCESS, RAY = "thread", "process", "ray:"  # as settings say them; "ray:ADDRESS"


class LoadFailed(Exception):
    """The backend could not load the model: the backend, not only the job, has a problem."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class RemoteError(Exception):
    """An exception raised in another process, as its type name, message and traceback,
    and whether its message is for the user (`errors.UserFacingError`)."""

    def __init__(self, type_name: str, message: str, details: str, for_user: bool = False) -> None:
        super().__init__(message)
        self.type_name = type_name
        self.details = details
        self.for_user = for_user


def describe_error(error: BaseException) -> tuple[str, str, str, bool]:
    """(type name, message, traceback, for the user): an exception as it crosses to
    another process (`RemoteError` takes them back)."""
    trace = "".join(traceback.format_exception(error))
    return type(error).__name__, str(error), trace, isinstance(error, UserFacingError)


class ExecutorError(RuntimeError, UserFacingError):
    """Where backends run failed (a worker, a cluster), not the backend: the message says."""


class WorkerDied(ExecutorError):
    """The worker process ended in the middle of a job (killed, crashed, out of memory)."""


@dataclass
class Ran:
    """A job's images, with the metadata of what really ran."""

    candidates: list[Candidate]
    model_info: ModelInfo | None
    sampler: str


class Executor(ABC):
    """Loads one backend's model at a time and runs jobs on it."""

    #: (backend id, model) loaded now, or None.
    loaded: tuple[str, str] | None = None
    #: The device the loaded model runs on ("cpu", "cuda:0 (…)"); "" when none is loaded.
    device: str = ""
    #: The worker process's id, while one holds the model (the process executor's).
    pid: int | None = None

    def is_loaded(self, backend_id: str, model: str) -> bool:
        """Whether a job for this backend and model can run without loading first."""
        return self.loaded == (backend_id, model)

    @abstractmethod
    def load(self, backend_id: str, model: str, progress: LoadingReport | None = None) -> None:
        """Load `model` with the backend (unloading whatever else was loaded), passing on
        the backend's bytes-read reports to `progress`; raises LoadFailed when the backend
        cannot, Cancelled never."""

    @abstractmethod
    def generate(self, request: GenerationRequest, ctx: GenerationContext) -> Ran:
        """Run `request` on the loaded model; raises Cancelled, or what the backend raised."""

    @abstractmethod
    def unload(self) -> None:
        """Free the loaded model (a worker process ends: its memory goes back)."""

    def shutdown(self) -> None:
        self.unload()


class InThreadExecutor(Executor):
    """The backend runs on the calling thread, in this process."""

    def __init__(self, registry: PluginRegistry) -> None:
        self.registry = registry
        self._backend: Backend | None = None

    def load(self, backend_id: str, model: str, progress: LoadingReport | None = None) -> None:
        if self.is_loaded(backend_id, model):
            return
        self.unload()
        backend = self.registry.get(backend_id)
        backend.loading_progress = progress
        try:
            backend.load(model)
        except (Cancelled, KeyboardInterrupt):
            raise
        except BaseException as error:
            _try_unload(backend)
            raise LoadFailed(error) from error
        finally:
            backend.loading_progress = None
        self._backend, self.loaded, self.device = backend, (backend_id, model), backend.device()
        # A model and its libraries stay until unloaded: spare the cycle collector from
        # walking their objects again at every full collection (each walk stalls the GUI).
        gc.freeze()

    def generate(self, request: GenerationRequest, ctx: GenerationContext) -> Ran:
        assert self._backend is not None and self.loaded is not None, "generate before load"
        candidates = self._backend.generate(request, ctx)
        info = self._backend.model_info(request.model)
        return Ran(candidates, info, self._backend.sampler_name(request))

    def unload(self) -> None:
        backend, self._backend, self.loaded, self.device = self._backend, None, None, ""
        if backend is not None:
            _try_unload(backend)
            gc.unfreeze()  # what the model held may be collected now


def _try_unload(backend: Backend) -> None:
    try:
        backend.unload()
    except Exception:
        log.exception("unloading %s raised", type(backend).__name__)
