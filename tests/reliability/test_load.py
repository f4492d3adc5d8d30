"""Load: 200 queued jobs cancelled at once; 1,000 images in one run. The queue stays
consistent, and memory and open files stay within the caches' bounds."""

from __future__ import annotations

import gc
import os
import threading
import tracemalloc

import pytest

from studio.core.engine import KEEP_FINISHED
from studio.core.jobs import JobState
from studio.core.request import GenerationRequest

WAIT = 30


def request(**fields) -> GenerationRequest:
    defaults = {
        "prompt": "a red circle",
        "backend": "fake",
        "seed": 1,
        "width": 16,
        "height": 16,
        "steps": 1,
        "count": 4,
        "candidates": 4,
    }
    return GenerationRequest(**{**defaults, **fields})


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


def queue_and_cancel_all(engine, fake, rounds: int) -> None:
    for _ in range(rounds):
        fake.GATE = threading.Event()
        jobs = [engine.submit(request(seed=n)) for n in range(200)]
        assert len(engine.queued()) >= 199
        engine.cancel_all()
        fake.GATE.set()
        assert all(job.wait(WAIT) for job in jobs)
        assert {job.state for job in jobs} == {JobState.CANCELLED}
        assert engine.queued() == [] and engine.running() is None


@pytest.mark.reliability
def test_two_hundred_queued_jobs_cancelled_at_once(engine) -> None:
    engine, fake = engine
    engine.submit(request()).wait(WAIT)  # the model is loaded: measure from here
    tracemalloc.start()  # before anything is made that is freed later (or frees go unseen)
    queue_and_cancel_all(engine, fake, rounds=1)  # the engine keeps 200 finished jobs
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    queue_and_cancel_all(engine, fake, rounds=3)
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert engine.history.count() == 4  # only the first job's images
    assert grown < 100_000, grown  # back to where it was: nothing piles up


@pytest.mark.reliability
def test_a_thousand_images_in_one_run_do_not_grow_memory_or_files(engine) -> None:
    engine, _ = engine
    tracemalloc.start()
    for n in range(250):  # warm up: model loaded, caches, connections, KEEP_FINISHED jobs
        engine.submit(request(seed=n)).wait(WAIT)
    gc.collect()
    memory, files = tracemalloc.get_traced_memory()[0], open_files()
    for n in range(250):  # 1,000 images
        job = engine.submit(request(seed=1_000 + n))
        assert job.wait(WAIT) and job.state is JobState.DONE
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - memory
    tracemalloc.stop()
    assert engine.history.count() == (250 + 250) * 4
    assert open_files() <= files
    assert engine.job(job.id) is not None and len(engine._jobs) <= KEEP_FINISHED + 1
    assert grown < 1_000_000, grown
