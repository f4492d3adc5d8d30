"""Generation in a worker process: heavy imports, model memory and crashes stay out of the
window's process.

One long-lived worker per loaded backend and model, started (with `spawn`: never fork
after Qt or torch threads) when a job needs it, kept warm between jobs, ended when the
model is unloaded, so that its memory goes back to the system. A worker that died is
started again by the next job. Requests go in over a pipe; bytes read while loading,
progress in each phase, small previews, results (raw RGB arrays) and errors come back.
Cancel is a shared event the worker's context checks at every step. A worker whose parent
dies ends itself.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
import time
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from studio.core.backend import STEPS, Cancelled, Candidate, GenerationContext
from studio.core.executors import (
    Executor,
    LoadFailed,
    Ran,
    RemoteError,
    WorkerDied,
)
from studio.core.load_progress import LoadingReport, ThrottledLoading
from studio.core.request import GenerationRequest

if TYPE_CHECKING:
    from collections.abc import Callable
    from multiprocessing.synchronize import Event

    from studio.core.models import ModelLibrary

log = logging.getLogger(__name__)
WAKE_S = 0.05  # how often a waiting parent looks at its job's cancel flag
STOP_S = 5.0  # a worker asked to stop gets this long before it is killed
WORKER_LOG = "studio-worker.log"


class ProcessExecutor(Executor):
    """Runs each backend in a worker process of its own (one at a time)."""

    def __init__(
        self,
        library: Callable[[], ModelLibrary] | None = None,
        log_folder: Path | None = None,
        preview_interval: float = 0.2,
    ) -> None:
        self.library = library  # the model library as the settings say now, sent at load
        self.log_folder = log_folder
        self.preview_interval = preview_interval
        self._mp = multiprocessing.get_context("spawn")
        self._process: Any = None
        self._conn: Connection | None = None
        self._cancel: Event | None = None

    @property
    def pid(self) -> int | None:
        """The worker's process id, while one runs."""
        return self._process.pid if self._process is not None else None

    def is_loaded(self, backend_id: str, model: str) -> bool:
        alive = self._process is not None and self._process.is_alive()
        return alive and self.loaded == (backend_id, model)

    def load(self, backend_id: str, model: str, progress: LoadingReport | None = None) -> None:
        if self.is_loaded(backend_id, model):
            return
        self.unload()
        self._start()
        library = self.library() if self.library is not None else None
        self._send(("load", backend_id, model, library))
        reply = self._receive(None)
        while reply[0] == "loading":  # bytes read so far, already thinned out by the worker
            if progress is not None:
                progress(*reply[1:])
            reply = self._receive(None)
        if reply[0] == "load_failed":
            self.unload()
            raise LoadFailed(RemoteError(*reply[1:]))
        self.loaded, self.device = (backend_id, model), reply[1]

    def generate(self, request: GenerationRequest, ctx: GenerationContext) -> Ran:
        assert self._cancel is not None and self.loaded is not None, "generate before load"
        self._cancel.clear()
        self._send(("generate", request))
        while True:
            reply = self._receive(ctx)
            kind = reply[0]
            try:
                if kind == "progress":
                    ctx.progress(*reply[1:])
                elif kind == "preview":
                    ctx.preview(reply[1])
            except Cancelled:  # the job was cancelled: the worker stops at its next step
                self._cancel.set()
            if kind == "results":
                candidates = [Candidate(image, score, seed) for image, score, seed in reply[1]]
                return Ran(candidates, reply[2], reply[3])
            if kind == "cancelled":
                raise Cancelled
            if kind == "failed":
                raise RemoteError(*reply[1:])

    def unload(self) -> None:
        """End the worker (asked first, then killed): all its memory goes back."""
        process, conn = self._process, self._conn
        self._process = self._conn = self._cancel = None
        self.loaded, self.device = None, ""
        if process is None:
            return
        with contextlib.suppress(OSError, ValueError, AttributeError):  # AttributeError: no pipe
            conn.send(("stop",))  # type: ignore[union-attr]
        process.join(STOP_S)
        if process.is_alive():
            log.warning("the generation process did not stop in %.0f s: killed", STOP_S)
            process.kill()
            process.join()
        if conn is not None:
            conn.close()

    # -- the pipe ----------------------------------------------------------

    def _start(self) -> None:
        here, there = self._mp.Pipe()
        cancel = self._mp.Event()
        process = self._mp.Process(
            target=worker_main,
            args=(there, cancel, self.preview_interval, self.log_folder),
            name="studio-generation",
            daemon=True,  # a closing app never waits for it, nor leaves it behind
        )
        try:
            process.start()
        finally:
            there.close()  # the worker holds the only other end: its death reads as EOF here
        self._process, self._conn, self._cancel = process, here, cancel

    def _send(self, message: tuple[Any, ...]) -> None:
        assert self._conn is not None
        try:
            self._conn.send(message)
        except (OSError, ValueError) as error:
            raise self._died() from error

    def _receive(self, ctx: GenerationContext | None) -> tuple[Any, ...]:
        """The worker's next message; meanwhile a cancelled job sets the worker's flag."""
        assert self._conn is not None and self._process is not None and self._cancel is not None
        while True:
            ready = wait([self._conn, self._process.sentinel], WAKE_S)
            if ctx is not None and ctx.cancelled:
                self._cancel.set()
            if self._conn in ready:
                try:
                    return self._conn.recv()
                except (EOFError, OSError) as error:
                    raise self._died() from error
            if ready:  # only the sentinel: the process ended with nothing left to read
                raise self._died()

    def _died(self) -> WorkerDied:
        process = self._process
        if process is not None:
            process.join(1.0)
        code = process.exitcode if process is not None else None
        self._process = self._conn = self._cancel = None
        self.loaded, self.device = None, ""
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit {code}"
        return WorkerDied(f"the generation process ended unexpectedly ({how})")


# -- the worker process -----------------------------------------------------------------


class _WorkerContext:
    """The `GenerationContext` inside the worker: reports go up the pipe."""

    def __init__(self, conn: Connection, cancel: Event, interval: float, device: str) -> None:
        self._conn, self._cancel, self._interval, self._device = conn, cancel, interval, device
        self._last_preview = 0.0

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def device(self) -> str:
        return self._device

    def check_cancelled(self) -> None:
        if self._cancel.is_set():
            raise Cancelled

    def progress(self, step: int, total: int, phase: str = STEPS) -> None:
        self.check_cancelled()
        self._conn.send(("progress", step, total, phase))

    def preview(self, image: Any) -> None:
        from studio.core.images import preview_of

        now = time.monotonic()
        if now - self._last_preview >= self._interval:
            self._last_preview = now
            self._conn.send(("preview", np.asarray(preview_of(image))))


def worker_main(
    conn: Connection, cancel: Event, preview_interval: float, log_folder: Path | None
) -> None:
    """The worker's loop: load, generate, stop; every error goes back as a message."""
    from studio.core.hosted import HostedBackend

    _end_with_parent()
    _log_to(log_folder)
    hosted = HostedBackend()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            break
        kind = message[0]
        if kind == "stop":
            break
        if kind == "load":
            loading = ThrottledLoading(lambda done, total: conn.send(("loading", done, total)))
            conn.send(hosted.load(*message[1:], loading))
        elif kind == "generate":
            ctx = _WorkerContext(conn, cancel, preview_interval, hosted.device())
            conn.send(hosted.generate(message[1], ctx))
    with contextlib.suppress(Exception):
        hosted.unload()


def _end_with_parent() -> None:
    """Exit when the app's process is gone, however it ended (even SIGKILL): no orphans."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        os._exit(0)

    threading.Thread(target=watch, name="studio-parent-watch", daemon=True).start()


def _log_to(folder: Path | None) -> None:
    if folder is None:
        return
    handler = logging.FileHandler(folder / WORKER_LOG, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)
