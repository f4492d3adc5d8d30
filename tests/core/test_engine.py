"""The engine, driven by the scriptable fake backend under tests/fakes."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from studio.core.engine import Engine
from studio.core.history import HistoryStore
from studio.core.jobs import (
    Failed,
    JobState,
    Preview,
    Progress,
    QueueChanged,
    Results,
    StateChanged,
)
from studio.core.registry import PluginRegistry
from studio.core.request import GenerationRequest

WAIT = 10  # seconds; generous, only hit when something is broken


class Recorder:
    """Collects engine events; `states(job)` gives a job's state sequence."""

    def __init__(self) -> None:
        self.events: queue.SimpleQueue = queue.SimpleQueue()
        self.seen: list = []

    def __call__(self, event) -> None:
        self.events.put(event)

    def drain(self) -> list:
        while not self.events.empty():
            self.seen.append(self.events.get())
        return self.seen

    def of(self, job_id: int, kind: type | None = None) -> list:
        return [
            e
            for e in self.drain()
            if getattr(e, "job_id", None) == job_id and (kind is None or isinstance(e, kind))
        ]

    def states(self, job_id: int) -> list[JobState]:
        return [e.state for e in self.of(job_id, StateChanged)]


@pytest.fixture
def fake(install_plugins):
    install_plugins()
    import fake_backend

    fake_backend.GATE = None
    fake_backend.STEP_STARTED.clear()
    fake_backend.CALLS.clear()
    yield fake_backend
    fake_backend.GATE = None


@pytest.fixture
def engine(fake, tmp_path: Path) -> Iterator[tuple[Engine, Recorder]]:
    history = HistoryStore(tmp_path / "data")
    engine = Engine(PluginRegistry(), history, preview_interval=0.0)
    recorder = Recorder()
    engine.subscribe(recorder)
    yield engine, recorder
    if fake.GATE is not None:
        fake.GATE.set()
    engine.shutdown()
    history.close()


def request(**fields) -> GenerationRequest:
    defaults = {"prompt": "a red circle", "backend": "fake", "seed": 10, "width": 16, "height": 16}
    return GenerationRequest(**{**defaults, **fields})


def test_a_job_runs_through_its_states_and_saves_before_announcing(engine) -> None:
    engine, events = engine
    job = engine.submit(request(count=2, candidates=6, steps=3))
    assert job.wait(WAIT)
    assert job.state is JobState.DONE
    assert events.states(job.id) == [
        JobState.QUEUED,
        JobState.LOADING,
        JobState.RUNNING,
        JobState.DONE,
    ]
    phases = [(e.phase, e.step, e.total) for e in events.of(job.id, Progress)]
    steps = [("steps", 1, 3), ("steps", 2, 3), ("steps", 3, 3)]
    assert phases == [*steps, ("saving", 0, 2), ("saving", 2, 2)]  # no model bytes: no loading
    assert len(events.of(job.id, Preview)) == 3
    (results,) = events.of(job.id, Results)
    assert [e.id for e in results.entries] == [e.id for e in job.results]
    order = [type(e) for e in events.of(job.id)]
    assert order.index(Results) < len(order) - 1  # announced before DONE
    for entry in results.entries:  # saved before announced: row and file exist
        assert entry.path.is_file()
        assert engine.history.get(entry.id) is not None


def test_results_are_best_first_with_their_own_seeds(engine) -> None:
    engine, _ = engine
    job = engine.submit(request(count=3, candidates=8, seed=100))
    assert job.wait(WAIT)
    scores = [e.metadata.score for e in job.results]
    assert scores == sorted(scores, reverse=True)
    assert [e.metadata.rank for e in job.results] == [0, 1, 2]
    seeds = {e.request.seed for e in job.results}
    assert len(seeds) == 3 and seeds <= set(range(100, 108))
    assert job.results[0].metadata.model_hash == "0123456789"
    assert job.results[0].metadata.sampler == "fake"


def test_model_is_loaded_once_and_switched_when_needed(engine, fake) -> None:
    engine, _ = engine
    for model in ("", "", "tiny"):
        assert engine.submit(request(model=model)).wait(WAIT)
    assert fake.CALLS == ["load ", "unload", "load tiny"]


def test_cancel_a_queued_job_removes_it_at_once(engine, fake) -> None:
    engine, events = engine
    fake.GATE = threading.Event()
    first = engine.submit(request(steps=2))
    second = engine.submit(request(steps=2))
    assert fake.STEP_STARTED.wait(WAIT)
    assert engine.cancel(second.id)
    assert second.state is JobState.CANCELLED  # immediately, without waiting
    assert second not in engine.queued()
    queue_events = [e for e in events.drain() if isinstance(e, QueueChanged)]
    assert queue_events[-1] == QueueChanged((), first.id)
    fake.GATE.set()
    assert first.wait(WAIT) and first.state is JobState.DONE
    assert events.states(second.id) == [JobState.QUEUED, JobState.CANCELLED]


def test_cancel_a_running_job_stops_at_the_next_step_and_saves_nothing(engine, fake) -> None:
    engine, events = engine
    fake.GATE = threading.Event()
    job = engine.submit(request(steps=50))
    assert fake.STEP_STARTED.wait(WAIT)
    assert engine.cancel(job.id)
    fake.GATE.set()
    assert job.wait(WAIT)
    assert job.state is JobState.CANCELLED
    assert len(events.of(job.id, Progress)) <= 1  # stopped within one step
    assert engine.history.count() == 0
    assert not list((engine.history.data_dir / "images").rglob("*.png"))
    after = engine.submit(request())  # the engine keeps working
    assert after.wait(WAIT) and after.state is JobState.DONE


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"options": {"fail_at": 1}}, "the backend failed unexpectedly: boom at step 1 (details"),
        ({"options": {"nan": True}}, "NaN"),
        ({"options": {"too_few": True}, "count": 2}, "returned 1 images, 2 were asked for"),
        ({"model": "missing"}, "failed unexpectedly: no model named 'missing'"),
        ({"width": 12}, "width 12 must be a multiple of 8"),
        ({"backend": "broken"}, "backend 'broken' failed: this plugin needs a library"),
        ({"backend": "nope"}, "unknown backend 'nope'"),
    ],
)
def test_a_failing_job_fails_alone_and_the_engine_goes_on(engine, fields, message) -> None:
    engine, events = engine
    bad = engine.submit(request(**fields))
    good = engine.submit(request(count=1))
    assert good.wait(WAIT)
    assert bad.state is JobState.FAILED
    assert message in bad.error
    (failed,) = events.of(bad.id, Failed)
    assert failed.message == bad.error and "Traceback" in failed.details
    assert good.state is JobState.DONE
    assert engine.history.count() == 1  # nothing of the failed job was saved


def test_a_listener_that_raises_does_not_stop_the_engine(engine) -> None:
    engine, _ = engine
    engine.subscribe(lambda event: 1 / 0)
    job = engine.submit(request())
    assert job.wait(WAIT) and job.state is JobState.DONE


def test_cancel_all_and_shutdown_leave_nothing_running(engine, fake) -> None:
    engine, _ = engine
    fake.GATE = threading.Event()
    jobs = [engine.submit(request(steps=3)) for _ in range(20)]
    assert fake.STEP_STARTED.wait(WAIT)
    engine.cancel_all()
    fake.GATE.set()
    assert all(job.wait(WAIT) for job in jobs)
    assert {job.state for job in jobs} == {JobState.CANCELLED}
    assert engine.queued() == [] and engine.running() is None


def test_background_pool_runs_work_off_the_caller_thread(engine) -> None:
    engine, _ = engine
    name = engine.background(lambda: threading.current_thread().name).result(WAIT)
    assert name.startswith("studio-bg")
