"""The backend's side of a worker elsewhere (a worker process, a Ray actor): one backend
loaded and run there, every answer a plain, picklable message, every error one too."""

from __future__ import annotations

from typing import Any

import numpy as np

from studio.core.backend import Cancelled, GenerationContext
from studio.core.executors import describe_error
from studio.core.images import to_pil
from studio.core.load_progress import LoadingReport
from studio.core.registry import PluginRegistry
from studio.core.request import GenerationRequest


class HostedBackend:
    def __init__(self) -> None:
        self.registry = PluginRegistry()
        self.backend: Any = None

    def load(
        self, backend_id: str, model: str, library: Any, loading: LoadingReport | None = None
    ) -> tuple[Any, ...]:
        """("loaded", device) or ("load_failed", type, message, traceback); the backend's
        bytes-read reports go to `loading` meanwhile."""
        self.registry.model_library = (lambda: library) if library is not None else None
        try:
            self.backend = self.registry.get(backend_id)
            self.backend.loading_progress = loading
            try:
                self.backend.load(model)
            finally:
                self.backend.loading_progress = None
            return ("loaded", self.backend.device())
        except BaseException as error:
            self.backend = None
            return ("load_failed", *describe_error(error))

    def generate(self, request: GenerationRequest, ctx: GenerationContext) -> tuple[Any, ...]:
        """("results", [(RGB array, score, seed)], model info, sampler), ("cancelled",) or
        ("failed", type, message, traceback)."""
        try:
            made = self.backend.generate(request, ctx)
            ctx.check_cancelled()
            images = [(np.asarray(to_pil(c.image)), c.score, c.seed) for c in made[: request.count]]
            info = self.backend.model_info(request.model)
            return ("results", images, info, self.backend.sampler_name(request))
        except Cancelled:
            return ("cancelled",)
        except BaseException as error:
            return ("failed", *describe_error(error))

    def device(self) -> str:
        return str(self.backend.device()) if self.backend is not None else "cpu"

    def unload(self) -> None:
        if self.backend is not None:
            try:
                self.backend.unload()
            finally:
                self.backend = None
