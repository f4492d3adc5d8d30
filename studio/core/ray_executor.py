"""Jobs on a Ray cluster (the optional `cluster` extra): for more images than one machine
makes in time.

One actor per worker slot (a CPU, or a GPU when the cluster has them), spread over the
cluster's nodes, each keeping its backend and model loaded. A request's candidates are
split across the actors by image index: the actor for images a..b runs the same request
with seed + a and b - a candidates, which backends draw exactly as images a..b of the
whole (image i is a pure function of the request and i). Ranking happens after all are
back. Progress, previews and cancel cross the wire; an actor lost with its node has its
images drawn again by the others, or the job fails with the reason, never hangs. A
cluster that cannot place the workers fails the load with the reason, never pends.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from studio.core.backend import DECODING, STEPS, Cancelled, Candidate, GenerationContext
from studio.core.executors import (
    Executor,
    ExecutorError,
    LoadFailed,
    Ran,
    RemoteError,
    WorkerDied,
)
from studio.core.load_progress import LoadingReport
from studio.core.request import GenerationRequest

if TYPE_CHECKING:
    from collections.abc import Callable

    from studio.core.models import ModelLibrary

WAKE_S = 0.1  # how often the driver looks at progress and its job's cancel flag
PLACE_S = 60.0  # how long the cluster may take to place and load the workers
RETRIES = 2  # times a chunk of images is drawn again after its worker was lost
SEEDS = 2**32


class GenerationActor:
    """A worker slot on the cluster: its backend, its model, its job's progress."""

    def __init__(self) -> None:
        from studio.core.hosted import HostedBackend

        self.hosted = HostedBackend()
        self.cancel_flag = threading.Event()
        self.done, self.total, self.phase, self.latest = 0, 0, STEPS, None

    def load(self, backend_id: str, model: str, library: Any) -> tuple[Any, ...]:
        return self.hosted.load(backend_id, model, library)

    def generate(self, request: GenerationRequest) -> tuple[Any, ...]:
        self.cancel_flag.clear()
        self.done, self.total, self.phase, self.latest = 0, 0, STEPS, None
        return self.hosted.generate(request, _ActorContext(self))

    def status(self) -> tuple[int, int, str, Any]:
        """(done, in all, in which phase, the newest preview or None); runs beside
        `generate`."""
        latest, self.latest = self.latest, None
        return self.done, self.total, self.phase, latest

    def cancel(self) -> None:
        self.cancel_flag.set()

    def node(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()


class _ActorContext:
    def __init__(self, actor: GenerationActor) -> None:
        self._actor = actor
        self._last_preview = 0.0

    @property
    def cancelled(self) -> bool:
        return self._actor.cancel_flag.is_set()

    @property
    def device(self) -> str:
        return self._actor.hosted.device()

    def check_cancelled(self) -> None:
        if self.cancelled:
            raise Cancelled

    def progress(self, step: int, total: int, phase: str = STEPS) -> None:
        self._actor.done, self._actor.total, self._actor.phase = step, total, phase
        self.check_cancelled()

    def preview(self, image: Any) -> None:
        from studio.core.images import preview_of

        now = time.monotonic()
        if now - self._last_preview >= 0.2:
            self._last_preview = now
            self._actor.latest = np.asarray(preview_of(image))


@dataclass
class _Chunk:
    start: int  # the first image's index in the request
    size: int
    tries: int = 0
    steps: tuple[int, int] = (0, 0)  # done, in all (as its worker last said)


class RayExecutor(Executor):
    """Runs jobs on the actors of a Ray cluster."""

    def __init__(
        self,
        address: str,
        library: Callable[[], ModelLibrary] | None = None,
        slots: int | None = None,
        place_s: float = PLACE_S,
    ) -> None:
        self.address = address  # "auto": the cluster `ray start --head` made on this machine
        self.library = library
        self.slots = slots  # None: one per GPU of the cluster, else one per CPU
        self.place_s = place_s
        self.actors: list[Any] = []
        self._connected = False  # this executor called ray.init, and so ends it

    def is_loaded(self, backend_id: str, model: str) -> bool:
        return bool(self.actors) and self.loaded == (backend_id, model)

    def load(self, backend_id: str, model: str, progress: LoadingReport | None = None) -> None:
        """Loads on every actor at once; bytes read there are not reported (the driver
        waits for all of them in one call)."""
        if self.is_loaded(backend_id, model):
            return
        self.unload()
        import ray

        try:
            if not ray.is_initialized():
                ray.init(address=self.address, namespace="studio", log_to_driver=False)
                self._connected = True
            actors = self._place()
            library = self.library() if self.library is not None else None
            refs = [actor.load.remote(backend_id, model, library) for actor in actors]
            ready, pending = ray.wait(refs, num_returns=len(refs), timeout=self.place_s)
            if pending:
                for actor in actors:
                    ray.kill(actor)
                free = ray.available_resources().get("CPU", 0)
                raise RuntimeError(
                    f"the Ray cluster could not place {len(actors)} workers within "
                    f"{self.place_s:.0f} s ({free:g} CPUs free)"
                )
            replies = ray.get(ready)
        except LoadFailed:
            raise
        except Exception as error:  # cannot connect, cannot place: the backend is not at fault
            raise ExecutorError(f"Ray: {error}") from error
        failed = [r for r in replies if r[0] == "load_failed"]
        if failed:
            for actor in actors:
                ray.kill(actor)
            raise LoadFailed(RemoteError(*failed[0][1:]))
        self.actors, self.loaded = actors, (backend_id, model)
        devices = sorted({r[1] for r in replies})
        self.device = f"Ray cluster, {len(actors)} workers ({', '.join(devices)})"

    def _place(self) -> list[Any]:
        import ray

        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 0))
        slots = self.slots or gpus or cpus
        if slots < 1:
            raise RuntimeError(f"the Ray cluster at {self.address} has no CPU or GPU to run on")
        needs = {"num_gpus": 1} if gpus and not self.slots else {"num_cpus": 1}
        actor = ray.remote(
            max_concurrency=2, max_restarts=0, scheduling_strategy="SPREAD", **needs
        )(GenerationActor)  # spread over the nodes: one lost node costs the fewest actors
        return [actor.remote() for _ in range(slots)]

    def generate(self, request: GenerationRequest, ctx: GenerationContext) -> Ran:
        import ray

        chunks = _split(request.candidates, len(self.actors))
        waiting, busy = list(chunks), {}  # busy: result ref -> (chunk, actor)
        idle, lost = list(self.actors), []
        made: list[Candidate] = []
        info: Any = None
        sampler, cancelled = "", False
        next_poll = time.monotonic() + 2 * WAKE_S  # short jobs need no progress round trip

        def cancel() -> bool:
            for _, actor in busy.values():
                actor.cancel.remote()
            waiting.clear()  # nothing more to draw
            return True

        while waiting or busy:
            while waiting and idle:
                chunk, actor = waiting.pop(0), idle.pop(0)
                sub = request.replace(
                    seed=(request.seed + chunk.start) % SEEDS,
                    candidates=chunk.size,
                    count=chunk.size,
                )
                busy[actor.generate.remote(sub)] = (chunk, actor)
            if waiting and not busy:
                raise WorkerDied(f"the Ray cluster lost every worker ({len(lost)} lost)")
            ready, _ = ray.wait(list(busy), num_returns=1, timeout=WAKE_S)
            if not cancelled and ctx.cancelled:
                cancelled = cancel()
            for ref in ready:
                chunk, actor = busy.pop(ref)
                try:
                    reply = ray.get(ref)
                except ray.exceptions.RayActorError:  # its node (or process) is gone
                    lost.append(actor)
                    chunk.tries += 1
                    if chunk.tries > RETRIES:
                        raise WorkerDied(
                            f"images {chunk.start}-{chunk.start + chunk.size - 1} lost their "
                            f"Ray worker {chunk.tries} times"
                        ) from None
                    chunk.steps = (0, 0)
                    if not cancelled:
                        waiting.append(chunk)
                    continue
                idle.append(actor)
                if reply[0] == "failed":
                    cancel()
                    raise RemoteError(*reply[1:])
                if reply[0] == "results":
                    _, images, info, sampler = reply
                    made += [Candidate(image, score, seed) for image, score, seed in images]
                    steps = chunk.steps[1] or 1  # all of them, as last reported
                    chunk.steps = (steps, steps)
            if time.monotonic() >= next_poll and busy and not cancelled:
                next_poll = time.monotonic() + 2 * WAKE_S
                try:
                    self._report(busy, chunks, ctx)
                except Cancelled:
                    cancelled = cancel()
        self.actors = [a for a in self.actors if a not in lost]
        if cancelled:
            raise Cancelled
        return Ran(_in_order(made, request.seed), info, sampler)

    def _report(self, busy: dict[Any, Any], chunks: list[_Chunk], ctx: GenerationContext) -> None:
        """Progress over all chunks and the newest preview; raises Cancelled as ctx does."""
        import ray

        pairs = list(busy.values())
        try:
            statuses = ray.get([actor.status.remote() for _, actor in pairs], timeout=5)
        except ray.exceptions.RayError:
            return  # a lost worker shows up as its chunk's error
        preview, decoding = None, False
        for (chunk, _), (done, total, phase, latest) in zip(pairs, statuses, strict=True):
            # past its steps (decoding), a chunk has run them all
            chunk.steps = (done, total) if phase == STEPS else (chunk.steps[1],) * 2
            decoding |= phase == DECODING
            preview = latest if latest is not None else preview
        done, total = sum(c.steps[0] for c in chunks), sum(c.steps[1] for c in chunks)
        if decoding and done == total:  # the last chunks decode: tiles are theirs alone
            ctx.progress(0, 1, DECODING)  # raises Cancelled
        elif total:
            ctx.progress(done, total)
        if preview is not None:
            ctx.preview(preview)

    def shutdown(self) -> None:
        self.unload()
        if self._connected:
            import ray

            ray.shutdown()  # the driver leaves; the cluster goes on
            self._connected = False

    def unload(self) -> None:
        actors, self.actors = self.actors, []
        self.loaded, self.device = None, ""
        if actors:
            import ray

            for actor in actors:
                ray.kill(actor)  # its model's memory goes with its process


def _split(n: int, parts: int) -> list[_Chunk]:
    """`n` image indices in `parts` contiguous chunks, as even as can be (none empty)."""
    parts = max(1, min(parts, n))
    sizes = [n // parts + (1 if i < n % parts else 0) for i in range(parts)]
    starts = np.cumsum([0, *sizes[:-1]])
    return [_Chunk(int(start), size) for start, size in zip(starts, sizes, strict=True)]


def _in_order(made: list[Candidate], seed: int) -> list[Candidate]:
    """Best first when ranked (ties by index), else by image index (seed + i)."""

    def index(c: Candidate) -> int:
        return ((c.seed if c.seed is not None else seed) - seed) % SEEDS

    if any(c.score is not None for c in made):
        return sorted(made, key=lambda c: (-(c.score or 0.0), index(c)))
    return sorted(made, key=index)
