"""A GenerationContext for backend tests: records progress and previews, cancels on cue;
and the device an ONNX backend must report for the sessions it made."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import numpy as np

from studio.api import STEPS, Cancelled


class Context:
    """A GenerationContext that records what the backend reports."""

    def __init__(self, cancel_at: int | None = None) -> None:
        self.steps: list[tuple[int, int]] = []  # the STEPS phase's
        self.phases: list[tuple[str, int, int]] = []  # every report, with its phase
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

    def progress(self, step: int, total: int, phase: str = STEPS) -> None:
        self.phases.append((phase, step, total))
        if phase != STEPS:
            self.check_cancelled()
            return
        self.steps.append((step, total))
        if self.cancel_at is not None and step >= self.cancel_at:
            self._cancelled.set()
        self.check_cancelled()

    def preview(self, image) -> None:
        self.previews.append(np.asarray(image))


def onnx_device(sessions: Iterable[Any], cuda: str) -> str:
    """What an ONNX backend's `device()` must say of these sessions, on a GPU machine or
    not: the provider they all really got, after `cuda` (its name for the GPU) or 'cpu'."""
    providers = {session.get_providers()[0] for session in sessions}
    assert len(providers) == 1, f"sessions on different providers: {providers}"
    (provider,) = providers
    return f"{cuda if provider == 'CUDAExecutionProvider' else 'cpu'} ({provider})"
