"""The worker-process executor: the same jobs as in-thread, and the faults a process
boundary is for (a killed or crashing backend, a dying app), with real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest
from PIL import Image

from studio.core.engine import Engine
from studio.core.executors import InThreadExecutor
from studio.core.history import HistoryStore
from studio.core.jobs import JobState, Progress
from studio.core.process_executor import ProcessExecutor
from studio.core.registry import PluginRegistry
from studio.core.request import GenerationRequest

WAIT = 30  # seconds; generous (a worker starts in about 0.3 s), hit only when broken
DIED = "the generation process ended unexpectedly"


def request(**fields) -> GenerationRequest:
    defaults = {"prompt": "a fake", "backend": "fake", "width": 16, "height": 16, "seed": 5}
    return GenerationRequest(**{**defaults, **fields})


@pytest.fixture
def engine(install_plugins, tmp_path: Path) -> Iterator[Engine]:
    install_plugins()
    history = HistoryStore(tmp_path / "data")
    engine = Engine(PluginRegistry(), history, executor=ProcessExecutor(preview_interval=0))
    yield engine
    engine.shutdown()
    history.close()


def run(engine: Engine, req: GenerationRequest):
    job = engine.submit(req)
    assert job.wait(WAIT), "the job never finished"
    return job


def worker_pid(engine: Engine) -> int:
    pid = engine.executor.pid
    assert pid is not None and pid != os.getpid()
    return pid


def test_jobs_run_in_a_warm_worker_with_events_and_the_same_images(
    engine, install_plugins, tmp_path
) -> None:
    events = []
    engine.subscribe(events.append)
    first = run(engine, request(count=2, candidates=4))
    pid = worker_pid(engine)
    second = run(engine, request(count=2, candidates=4, seed=9))
    assert (first.state, second.state) == (JobState.DONE, JobState.DONE)
    assert worker_pid(engine) == pid  # kept warm
    steps = [e.step for e in events if isinstance(e, Progress) and e.job_id == first.id]
    assert steps[:4] == [1, 2, 3, 4]  # then saving
    # The same pixels, seeds and metadata as the same job run in this process.
    history = HistoryStore(tmp_path / "in-thread")
    here = Engine(PluginRegistry(), history, executor=InThreadExecutor(PluginRegistry()))
    try:
        local = run(here, request(count=2, candidates=4))
        pixels = [np.asarray(Image.open(e.path)) for e in first.results]
        again = [np.asarray(Image.open(e.path)) for e in local.results]
        assert all(np.array_equal(a, b) for a, b in zip(pixels, again, strict=True))
        assert [e.request.seed for e in first.results] == [e.request.seed for e in local.results]
        assert first.results[0].metadata.sampler == "fake"
        assert first.results[0].metadata.model_name == "Tiny fake"
    finally:
        here.shutdown()
        history.close()


def test_cancel_reaches_the_backend_within_a_step(engine) -> None:
    steps = []
    engine.subscribe(lambda e: steps.append(e.step) if isinstance(e, Progress) else None)
    job = engine.submit(request(steps=100, options={"step_s": 0.05}))
    deadline = time.monotonic() + WAIT
    while len(steps) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    engine.cancel(job.id)
    cancelled_at = len(steps)
    assert job.wait(WAIT)
    assert job.state is JobState.CANCELLED
    assert max(steps) <= cancelled_at + 2  # the step running, and one in the pipe
    assert run(engine, request()).state is JobState.DONE  # the same worker goes on


def test_a_killed_worker_fails_its_job_and_the_next_job_starts_another(engine) -> None:
    run(engine, request())
    first = worker_pid(engine)
    job = engine.submit(request(steps=100, options={"step_s": 0.05}))
    deadline = time.monotonic() + WAIT
    while job.state is not JobState.RUNNING and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(first, signal.SIGKILL)
    assert job.wait(WAIT)
    assert job.state is JobState.FAILED
    assert job.error.startswith(DIED) and "signal 9" in job.error
    after = run(engine, request())
    assert after.state is JobState.DONE
    assert worker_pid(engine) != first


@pytest.mark.parametrize("how", ["abort", "segfault"])
def test_a_crashing_backend_fails_its_job_not_the_app(engine, how) -> None:
    job = run(engine, request(options={"crash_at": 1, "crash": how}))
    assert job.state is JobState.FAILED
    assert job.error.startswith(DIED)
    assert engine.registry.record("fake").error == ""  # a job's fault, not the backend's
    assert run(engine, request()).state is JobState.DONE


def test_a_load_failure_in_the_worker_marks_the_backend_with_the_real_error(engine) -> None:
    job = run(engine, request(model="missing"))
    assert job.state is JobState.FAILED
    assert (
        job.error
        == "the backend failed unexpectedly: no model named 'missing' (details in the log)"
    )
    assert engine.registry.record("fake").error == "no model named 'missing'"
    assert "Traceback" in engine.registry.record("fake").traceback


def test_out_of_memory_in_the_worker_reads_as_out_of_memory(engine) -> None:
    job = run(engine, request(options={"oom_at": 0}))
    assert job.error.startswith("Out of memory")


def test_unloading_ends_the_worker_and_switching_models_starts_a_new_one(engine) -> None:
    run(engine, request())
    pid = worker_pid(engine)
    engine.unload().result(WAIT)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    run(engine, request(model="tiny"))
    assert worker_pid(engine) != pid


def test_shutdown_with_jobs_in_flight_leaves_no_worker(install_plugins, tmp_path) -> None:
    install_plugins()
    history = HistoryStore(tmp_path / "data")
    engine = Engine(PluginRegistry(), history, executor=ProcessExecutor())
    engine.submit(request(steps=100, options={"step_s": 0.05}))
    engine.submit(request())
    deadline = time.monotonic() + WAIT
    while engine.executor.pid is None and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.01)
    pid = worker_pid(engine)
    engine.shutdown()
    history.close()
    assert not psutil.pid_exists(pid)


APP = """
    import sys, time
    from studio.core.app import Core
    from studio.core.request import GenerationRequest

    if __name__ == "__main__":
        core = Core.open(sys.argv[1], executor="process")
        job = core.engine.submit(GenerationRequest(prompt="x", backend="fake", width=16,
                                                   height=16, steps=2, options={"step_s": 30}))
        while job.state.name not in ("RUNNING", "FAILED"):  # in the long step, not loading
            time.sleep(0.01)
        print(core.engine.executor.pid, flush=True)
        time.sleep(60)
"""


@pytest.mark.parametrize("death", ["kill", "exit"])
def test_a_dying_app_leaves_no_worker_behind(install_plugins, tmp_path, death) -> None:
    """Even a worker deep in one long step (30 s here), which has no pipe to find broken."""
    env = install_plugins()
    script = tmp_path / "app.py"
    body = textwrap.dedent(APP)
    if death == "exit":  # os._exit: no clean-up at all, as a crash in native code
        body = body.replace("time.sleep(60)", "os._exit(3)").replace("import sys", "import os, sys")
    script.write_text(body)
    app = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "home")], env=env, stdout=subprocess.PIPE
    )
    assert app.stdout is not None
    worker = int(app.stdout.readline())
    assert psutil.pid_exists(worker)
    if death == "kill":
        app.kill()
    app.wait(WAIT)
    try:
        psutil.Process(worker).wait(10)
    except psutil.NoSuchProcess:
        pass  # already gone
    except psutil.TimeoutExpired:
        pytest.fail("the worker outlived the app")


def test_input_pictures_travel_to_the_worker_with_the_request(engine) -> None:
    from PIL import Image

    image = engine.history.inputs.add(Image.new("RGB", (16, 16), (10, 200, 30)))
    mask = Image.new("L", (16, 16), 0)
    mask.paste(255, (0, 0, 16, 8))
    job = run(
        engine, request(count=1, image=image, mask=engine.history.inputs.add(mask, mask=True))
    )
    assert job.state is JobState.DONE, job.error
    made = np.asarray(Image.open(job.results[0].path))
    assert (made[8:] == (10, 200, 30)).all() and not (made[:8] == (10, 200, 30)).all()
