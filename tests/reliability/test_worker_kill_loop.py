"""The generation worker killed (SIGKILL) at random moments of 20 jobs of the built-in
model: every job completes or fails with the message, the next job starts a new worker,
and the history stays whole: SQLite's integrity check passes, no image file is orphaned."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import time
from collections import Counter

import pytest

from studio.core.engine import Engine
from studio.core.history import HistoryStore
from studio.core.jobs import JobState
from studio.core.process_executor import ProcessExecutor
from studio.core.registry import PluginRegistry
from studio.core.request import GenerationRequest

KILLS = 20
DIED = "the generation process ended unexpectedly"


@pytest.mark.reliability
def test_random_kills_of_the_worker_fail_only_their_jobs(tmp_path) -> None:
    history = HistoryStore(tmp_path / "data")
    engine = Engine(PluginRegistry(), history, executor=ProcessExecutor())
    rng = random.Random(11)
    outcomes: Counter[JobState] = Counter()
    try:
        for n in range(KILLS):
            request = GenerationRequest("two red circles", backend="shapes", seed=n)
            job = engine.submit(request)
            deadline = time.monotonic() + 60
            while job.state is not JobState.RUNNING and not job.state.finished:
                assert time.monotonic() < deadline, "the job never ran"
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.5))  # a generation takes about 0.3 s here
            pid = engine.executor.pid
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
            assert job.wait(60), "a job hung after its worker was killed"
            assert job.state is JobState.DONE or (
                job.state is JobState.FAILED and job.error.startswith(DIED)
            ), (job.state, job.error)
            outcomes[job.state] += 1
    finally:
        engine.shutdown()
    assert outcomes[JobState.FAILED] >= KILLS // 4, outcomes  # the kills did land in jobs
    assert history.count() == 4 * outcomes[JobState.DONE]
    report = history.reconcile()
    assert not (report.missing or report.adopted or report.quarantined or report.temp_removed)
    history.close()
    with sqlite3.connect(tmp_path / "data" / "history.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
