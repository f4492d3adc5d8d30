"""Out of memory while loading or generating, and cancel while loading: the job ends
cleanly, nothing is saved, the model is released, and the next job works."""

from __future__ import annotations

import threading

import pytest

from studio.core.jobs import JobState
from studio.core.registry import BackendStatus
from studio.core.request import GenerationRequest

WAIT = 10


def request(**fields) -> GenerationRequest:
    defaults = {
        "prompt": "a red circle",
        "backend": "fake",
        "seed": 1,
        "width": 16,
        "height": 16,
        "steps": 3,
        "count": 2,
        "candidates": 2,
    }
    return GenerationRequest(**{**defaults, **fields})


@pytest.mark.reliability
@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"model": "huge"}, "Out of memory. Try fewer candidates or a smaller size."),
        ({"options": {"oom_at": 1}}, "Out of memory. Try fewer candidates or a smaller size."),
    ],
)
def test_out_of_memory_fails_the_job_alone(engine, fields, said) -> None:
    engine, fake = engine
    bad = engine.submit(request(**fields))
    assert bad.wait(WAIT) and bad.state is JobState.FAILED and said in bad.error
    assert engine.registry.record("fake").status is not BackendStatus.FAILED  # it may recover
    if "model" in fields:
        assert fake.CALLS[-1] == "unload"  # what it held is released
    good = engine.submit(request())
    assert good.wait(WAIT) and good.state is JobState.DONE
    assert engine.history.count() == 2  # the good job's images only


@pytest.mark.reliability
def test_cancel_while_loading_stops_before_generating(engine) -> None:
    engine, fake = engine
    fake.LOAD_GATE = threading.Event()
    job = engine.submit(request())
    assert fake.LOADING.wait(WAIT) and job.state is JobState.LOADING
    engine.cancel(job.id)
    fake.LOAD_GATE.set()
    assert job.wait(WAIT) and job.state is JobState.CANCELLED
    assert not fake.STEP_STARTED.is_set()  # stopped before its first step
    assert engine.history.count() == 0
    after = engine.submit(request())
    assert after.wait(WAIT) and after.state is JobState.DONE
