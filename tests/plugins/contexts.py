"""A GenerationContext for backend tests: records progress and previews, cancels on cue."""

from __future__ import annotations

import threading

import numpy as np

from studio.api import Cancelled


class Context:
    """A GenerationContext that records what the backend reports."""

    def __init__(self, cancel_at: int | None = None) -> None:
        self.steps: list[tuple[int, int]] = []
        self.previews: list[np.ndarray] = []
        self.cancel_at = cancel_at
        self._cancelled = threading.Event()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    @property
    def device(self) -> str:
        return "cpu"

    def check_cancelled(self) -> None:
        if self.cancelled:
            raise Cancelled

    def progress(self, step: int, total: int) -> None:
        self.steps.append((step, total))
        if self.cancel_at is not None and step >= self.cancel_at:
            self._cancelled.set()
        self.check_cancelled()

    def preview(self, image) -> None:
        self.previews.append(np.asarray(image))
