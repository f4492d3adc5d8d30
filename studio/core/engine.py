"""The engine: a job queue, one generation worker thread, and a small background pool."""

from __future__ import annotations

import logging
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from studio.core.backend import LOADING, SAVING, STEPS, Cancelled
from studio.core.errors import user_message
from studio.core.executors import (
    Executor,
    InThreadExecutor,
    LoadFailed,
    Ran,
    RemoteError,
)
from studio.core.history import HistoryEntry, HistoryStore
from studio.core.images import preview_of, to_pil
from studio.core.job_hashes import AddonNames, hash_ahead
from studio.core.jobs import (
    Event,
    Failed,
    Job,
    JobState,
    Preview,
    Progress,
    QueueChanged,
    Results,
    StateChanged,
)
from studio.core.load_progress import ThrottledLoading
from studio.core.metadata import ImageMetadata
from studio.core.registry import PluginRegistry
from studio.core.request import GenerationRequest, RequestError

log = logging.getLogger(__name__)
KEEP_FINISHED = 200  # finished jobs the engine still answers `job(id)` for
Listener = Callable[[Event], None]
T = TypeVar("T")


class _JobContext:
    """The `GenerationContext` a backend gets: progress, throttled previews, cancel."""

    def __init__(self, engine: Engine, job: Job, device: str) -> None:
        self._engine = engine
        self._job = job
        self._device = device
        self._last_preview = 0.0

    @property
    def cancelled(self) -> bool:
        return self._job.cancel_requested

    @property
    def device(self) -> str:
        return self._device

    def check_cancelled(self) -> None:
        if self._job.cancel_requested:
            raise Cancelled

    def progress(self, step: int, total: int, phase: str = STEPS) -> None:
        self.check_cancelled()
        self._engine._emit(Progress(self._job.id, step, total, phase))

    def preview(self, image: Any) -> None:
        now = time.monotonic()
        if now - self._last_preview < self._engine.preview_interval:
            return
        self._last_preview = now
        self._engine._emit(Preview(self._job.id, preview_of(image)))


class Engine:
    """Runs generation jobs one at a time, in order, off the caller's thread.

    Listeners are called on the worker thread, in event order; a UI bridges
    them to its own thread. Results are saved to history before `Results` is sent.
    """

    def __init__(
        self,
        registry: PluginRegistry,
        history: HistoryStore,
        *,
        preview_interval: float = 0.2,
        background_workers: int = 2,
        executor: Executor | None = None,
    ) -> None:
        self.registry = registry
        self.history = history
        self.preview_interval = preview_interval
        self.executor = executor or InThreadExecutor(registry)
        self._listeners: list[Listener] = []
        self._queue: deque[Job] = deque()
        self._jobs: dict[int, Job] = {}
        self._finished: deque[int] = deque()  # ids, oldest first: kept up to KEEP_FINISHED
        self._running: Job | None = None
        self._unloads: list[Future[None]] = []  # asked for by `unload`, done between jobs
        self._wake = threading.Condition()
        self._stopping = False
        self._pool = ThreadPoolExecutor(background_workers, thread_name_prefix="studio-bg")
        self._worker = threading.Thread(target=self._work, name="studio-generate", daemon=True)
        self._worker.start()

    # -- public API --------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` with every event; returns a function that unsubscribes."""
        with self._wake:
            self._listeners = [*self._listeners, listener]

        def unsubscribe() -> None:
            with self._wake:
                self._listeners = [x for x in self._listeners if x is not listener]

        return unsubscribe

    def submit(self, request: GenerationRequest) -> Job:
        """Queue a request. Backend-specific checks happen when it runs (no import here)."""
        job = Job(request)
        with self._wake:
            if self._stopping:
                raise RuntimeError("the engine has shut down")
            self._jobs[job.id] = job
            self._queue.append(job)
            self._wake.notify()
        self._emit(StateChanged(job.id, JobState.QUEUED))
        self._emit_queue()
        return job

    def cancel(self, job_id: int) -> bool:
        """Drop a queued job now, or stop a running one at its next step."""
        with self._wake:
            job = self._jobs.get(job_id)
            if job is None or job.state.finished:
                return False
            job.request_cancel()
            queued = job in self._queue
            if queued:
                self._queue.remove(job)
        if queued:
            self._finish(job, JobState.CANCELLED)
            self._emit_queue()
        return True

    def cancel_all(self) -> None:
        with self._wake:
            ids = [job.id for job in self._queue]
            running = self._running.id if self._running else None
        for job_id in [*ids, *([running] if running else [])]:
            self.cancel(job_id)

    def job(self, job_id: int) -> Job | None:
        return self._jobs.get(job_id)

    def queued(self) -> list[Job]:
        with self._wake:
            return list(self._queue)

    def running(self) -> Job | None:
        return self._running

    def unload(self) -> Future[None]:
        """Free the loaded model after the running job (a worker process ends, and its
        memory goes back to the system); the next job loads it again."""
        done: Future[None] = Future()
        with self._wake:
            if self._stopping:  # shutting down unloads anyway
                done.set_result(None)
                return done
            self._unloads.append(done)
            self._wake.notify()
        return done

    def device(self, backend_id: str) -> str:
        """Where the backend's loaded model runs ("cpu", "cuda:0 …"); "" when not loaded."""
        loaded = self.executor.loaded
        return self.executor.device if loaded is not None and loaded[0] == backend_id else ""

    def forget(self, job_id: int) -> None:
        """Drop a finished job from memory now (the oldest go by themselves)."""
        with self._wake:
            job = self._jobs.get(job_id)
            if job is not None and job.state.finished:
                del self._jobs[job_id]

    def background(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """Run small work (thumbnails, export) on the background pool."""
        return self._pool.submit(fn, *args, **kwargs)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Cancel everything, stop the worker, unload the model."""
        with self._wake:
            self._stopping = True
        self.cancel_all()
        with self._wake:
            self._wake.notify_all()
        self._worker.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- worker ------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._wake:
                while not self._queue and not self._stopping and not self._unloads:
                    self._wake.wait()
                unloads, self._unloads = self._unloads, []
            if unloads:  # between jobs, on this thread: the executor is never shared
                self._unload()
                for done in unloads:
                    done.set_result(None)
                continue
            with self._wake:
                if self._stopping and not self._queue:
                    break
                job = self._queue.popleft()
                self._running = job
            self._emit_queue()
            try:
                self._run(job)
            finally:
                with self._wake:
                    self._running = None
                self._emit_queue()
        self._unload()

    def _run(self, job: Job) -> None:
        request = job.request
        try:
            request = self._attach_inputs(request)
            # Checked here, in this process, before any model loads: capabilities are
            # cheap, whichever executor runs the backend.
            capabilities = self.registry.get(request.backend).capabilities()
            problems = capabilities.problems(request)
            if problems:
                raise RequestError(problems)
            request = capabilities.with_defaults(request)
            hashes = self._hash_ahead(request)
            self._ensure_loaded(job, request)
            if job.cancel_requested:
                raise Cancelled
            self._set_state(job, JobState.RUNNING)
            ctx = _JobContext(self, job, self.executor.device)
            ran = self.executor.generate(request, ctx)
            ctx.check_cancelled()  # a cancel during decoding saves nothing
            if len(ran.candidates) < request.count:
                raise RuntimeError(
                    f"the backend returned {len(ran.candidates)} images, "
                    f"{request.count} were asked for"
                )
            self._emit(Progress(job.id, 0, request.count, SAVING))
            job.results = self._save(ran, request, hashes)
            self._emit(Progress(job.id, request.count, request.count, SAVING))
        except Cancelled:
            self._finish(job, JobState.CANCELLED)
            return
        except BaseException as error:  # a backend's bug must never end the worker
            if isinstance(error, KeyboardInterrupt):
                raise
            self._fail(job, error)
            return
        self._emit(Results(job.id, tuple(job.results)))
        self._finish(job, JobState.DONE)

    def _attach_inputs(self, request: GenerationRequest) -> GenerationRequest:
        """The request with its input pictures' pixels (read from the store when it names
        them by digest only, as a request replayed from metadata does)."""
        inputs = self.history.inputs
        image, mask = inputs.attach(request.image), inputs.attach(request.mask)
        if request.controls:  # their maps, made and stored (imported on first use)
            from studio.core.controls import prepare

            controls = tuple(prepare(control, inputs) for control in request.controls)
        else:
            controls = ()
        if image is request.image and mask is request.mask and not controls:
            return request
        return request.replace(image=image, mask=mask, controls=controls)

    def _save(
        self, ran: Ran, request: GenerationRequest, hashes: Future[AddonNames]
    ) -> list[HistoryEntry]:
        """Write the first `count` images, best first, with the metadata of what ran."""
        candidates = ran.candidates[: request.count]
        info = ran.model_info
        model = info.ref if info else request.model  # the model really used, not ''
        created = time.time()  # one time per job keeps its images together, best first
        addons = hashes.result()  # waits only while a big file is still being hashed
        items = []
        for rank, candidate in enumerate(candidates):
            seed = request.seed if candidate.seed is None else candidate.seed
            meta = ImageMetadata(
                request=request.replace(seed=seed, model=model),
                sampler=ran.sampler,
                model_name=info.name if info else request.model,
                model_hash=info.hash if info else "",
                addons=addons,
                score=candidate.score,
                rank=rank,
                created_at=created,
            )
            items.append((to_pil(candidate.image), meta))
        return self.history.save(items, job_key=uuid.uuid4().hex)

    def _hash_ahead(self, request: GenerationRequest) -> Future[AddonNames]:
        """Hash the job's model and add-ons on the background pool while the model loads
        and runs, so that saving its images need not wait for seconds of hashing."""

        def default_model() -> str:
            try:
                info = self.registry.get(request.backend).model_info("")
            except Exception:  # the backend's own fault: loading it will say
                log.exception("backend %r: no default model to hash", request.backend)
                return ""
            return info.ref if info is not None else ""

        def stop_when_closing(_done: int, _total: int) -> None:
            if self._stopping:
                raise Cancelled

        library = self.registry.model_library
        return self._pool.submit(hash_ahead, library, request, default_model, stop_when_closing)

    def _ensure_loaded(self, job: Job, request: GenerationRequest) -> None:
        if self.executor.is_loaded(request.backend, request.model):
            return
        self._set_state(job, JobState.LOADING)

        def loading(done: int, total: int) -> None:
            self._emit(Progress(job.id, done, total, LOADING))

        try:
            self.executor.load(request.backend, request.model, ThrottledLoading(loading))
        except LoadFailed as failure:
            if not _is_memory_error(failure.error):  # the backend is fine, the machine is full
                self.registry.mark_failed(request.backend, failure.error)
            raise failure.error from None

    def _unload(self) -> None:
        try:
            self.executor.shutdown()
        except Exception:
            log.exception("unloading the model raised")

    # -- events ------------------------------------------------------------

    def _set_state(self, job: Job, state: JobState) -> None:
        job.state = state
        self._emit(StateChanged(job.id, state))

    def _finish(self, job: Job, state: JobState) -> None:
        self._set_state(job, state)
        job.mark_finished()
        with self._wake:  # a long session does not pile up finished jobs
            self._finished.append(job.id)
            while len(self._finished) > KEEP_FINISHED:
                self._jobs.pop(self._finished.popleft(), None)

    def _fail(self, job: Job, error: BaseException) -> None:
        job.error = _message(error)
        details = error.details if isinstance(error, RemoteError) else ""
        details = details or "".join(traceback.format_exception(error))
        log.error("job %d failed: %s\n%s", job.id, job.error, details)
        self._emit(Failed(job.id, job.error, details))
        self._finish(job, JobState.FAILED)

    def _emit_queue(self) -> None:
        with self._wake:
            event = QueueChanged(
                tuple(j.id for j in self._queue), self._running.id if self._running else None
            )
        self._emit(event)

    def _emit(self, event: Event) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                log.exception("an event listener raised; the engine carries on")


def _is_memory_error(error: BaseException) -> bool:
    if isinstance(error, RemoteError):
        return error.type_name == "MemoryError"
    return isinstance(error, MemoryError)


def _message(error: BaseException) -> str:
    if _is_memory_error(error):
        return "Out of memory. Try fewer candidates or a smaller size."
    return user_message(error)
