"""Jobs and the typed events the engine emits about them."""

from __future__ import annotations

import enum
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from studio.core.backend import STEPS
from studio.core.request import GenerationRequest

if TYPE_CHECKING:
    from PIL import Image

    from studio.core.history import HistoryEntry


class JobState(enum.Enum):
    QUEUED = "queued"
    LOADING = "loading"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.CANCELLED, JobState.FAILED)


_job_ids = itertools.count(1)


@dataclass(eq=False)
class Job:
    """One request on its way through the engine. Only the engine changes it."""

    request: GenerationRequest
    id: int = field(default_factory=lambda: next(_job_ids))
    state: JobState = JobState.QUEUED
    created_at: float = field(default_factory=time.time)
    error: str = ""
    results: list[HistoryEntry] = field(default_factory=list)
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    _finished: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    def request_cancel(self) -> None:
        self._cancel.set()

    def mark_finished(self) -> None:
        self._finished.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job is done, cancelled or failed."""
        return self._finished.wait(timeout)


@dataclass(frozen=True)
class JobEvent:
    job_id: int


@dataclass(frozen=True)
class StateChanged(JobEvent):
    state: JobState


@dataclass(frozen=True)
class Progress(JobEvent):
    """`step` of `total` in `phase` (LOADING: bytes; STEPS; DECODING: 0 of 1, or tiles;
    SAVING: images written)."""

    step: int
    total: int
    phase: str = STEPS


@dataclass(frozen=True)
class Preview(JobEvent):
    image: Image.Image  # small (at most PREVIEW_SIDE), RGB


@dataclass(frozen=True)
class Results(JobEvent):
    """Sent after the images are saved to history, best first."""

    entries: tuple[HistoryEntry, ...]


@dataclass(frozen=True)
class Failed(JobEvent):
    message: str  # one readable line
    details: str = ""  # the traceback, for a "details" pane and the log


@dataclass(frozen=True)
class QueueChanged:
    """The queue's contents changed: `queued` lists the waiting job ids in order."""

    queued: tuple[int, ...]
    running: int | None


Event = StateChanged | Progress | Preview | Results | Failed | QueueChanged
