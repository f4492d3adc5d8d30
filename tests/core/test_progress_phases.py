"""Progress through every phase of a job (bytes read loading, steps, decoding, saving),
the same in-thread and through a real worker process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from studio.core.backend import DECODING, LOADING, SAVING, STEPS
from studio.core.engine import Engine
from studio.core.executors import InThreadExecutor
from studio.core.history import HistoryStore
from studio.core.jobs import JobState, Progress
from studio.core.load_progress import ThrottledLoading
from studio.core.process_executor import ProcessExecutor
from studio.core.registry import PluginRegistry
from studio.core.request import GenerationRequest

WAIT = 30  # seconds; a worker process starts in well under that


@pytest.fixture(params=["thread", "process"])
def engine(request, install_plugins, tmp_path: Path) -> Iterator[Engine]:
    install_plugins()
    history = HistoryStore(tmp_path / "data")
    executor = (
        InThreadExecutor(PluginRegistry())
        if request.param == "thread"
        else ProcessExecutor(preview_interval=0)
    )
    engine = Engine(PluginRegistry(), history, executor=executor)
    yield engine
    engine.shutdown()
    history.close()


def progress_of(engine: Engine, **fields) -> list[tuple[str, int, int]]:
    seen: list[Progress] = []
    engine.subscribe(lambda e: seen.append(e) if isinstance(e, Progress) else None)
    defaults = {"prompt": "a fake", "backend": "fake", "width": 16, "height": 16, "count": 2}
    job = engine.submit(GenerationRequest(**{**defaults, **fields}))
    assert job.wait(WAIT) and job.state is JobState.DONE, job.error
    return [(e.phase, e.step, e.total) for e in seen if e.job_id == job.id]


def test_every_phase_is_reported_in_order(engine) -> None:
    import fake_backend

    phases = progress_of(engine, model="big", steps=2, options={"decode_tiles": 3})
    total = fake_backend.BIG_BYTES
    loading = [(phase, done) for phase, done, of in phases if of == total]
    assert loading == [(LOADING, total * part // 10) for part in range(11)]
    assert phases[len(loading) :] == [
        (STEPS, 1, 2),
        (STEPS, 2, 2),
        (DECODING, 0, 3),
        (DECODING, 1, 3),
        (DECODING, 2, 3),
        (DECODING, 3, 3),
        (SAVING, 0, 2),
        (SAVING, 2, 2),
    ]


def test_a_model_already_loaded_reports_no_loading(engine) -> None:
    progress_of(engine, model="big")
    phases = progress_of(engine, model="big", options={"decode_tiles": 0})
    assert [p for p in phases if p[0] in (LOADING, DECODING)] == [
        (DECODING, 0, 1),
        (DECODING, 1, 1),
    ]


def test_a_job_cancelled_while_loading_ends_cancelled_and_saves_nothing(engine) -> None:
    def cancel_when_loading(event: object) -> None:
        if isinstance(event, Progress) and event.phase == LOADING:
            engine.cancel(event.job_id)

    engine.subscribe(cancel_when_loading)
    job = engine.submit(
        GenerationRequest("a fake", backend="fake", model="big", width=16, height=16)
    )
    assert job.wait(WAIT)
    assert job.state is JobState.CANCELLED and job.results == []


def test_loading_reports_are_thinned_out(monkeypatch) -> None:
    clock = [0.0]
    monkeypatch.setattr("studio.core.load_progress.time.monotonic", lambda: clock[0])
    passed: list[tuple[int, int]] = []
    report = ThrottledLoading(lambda done, total: passed.append((done, total)))
    for done in range(0, 100_001, 10):  # 10,001 reports of 10 bytes, at once
        report(done, 100_000)
    assert len(passed) == 101  # one per 1 %: the first, each 1 % and the last
    assert passed[0] == (0, 100_000) and passed[-1] == (100_000, 100_000)
    report(100_000, 100_000)
    assert len(passed) == 101  # a repeat does not pass
    slow = ThrottledLoading(lambda done, total: passed.append((done, total)))
    slow(0, 10**9)
    clock[0] = 0.05
    slow(10, 10**9)  # 0.05 s and 1e-8 later: held back
    clock[0] = 0.2
    slow(20, 10**9)  # 0.2 s later: passes though far less than 1 %
    assert passed[-2:] == [(0, 10**9), (20, 10**9)]
