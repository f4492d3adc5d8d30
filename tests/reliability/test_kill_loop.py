"""Killed while saving (SIGKILL, at random moments, many times): on restart the database
passes SQLite's integrity check, every entry is whole or absent, files and rows agree
after reconciliation, and nothing committed before the kill is lost."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from studio.core.history import HistoryStore

ROOT = Path(__file__).resolve().parents[2]
KILLS = 60

WRITER = r"""
import sys
from pathlib import Path
from PIL import Image
from studio.core.history import HistoryStore
from studio.core.metadata import ImageMetadata
from studio.core.request import GenerationRequest
store = HistoryStore(Path(sys.argv[1]))
start = int(sys.argv[2])
print("ready", flush=True)
for n in range(start, start + 10_000):
    request = GenerationRequest(f"job {n}: a red circle", seed=n, count=2, backend="fake")
    items = [(Image.new("RGB", (32, 32), (n % 256, rank * 90, 40)),
              ImageMetadata(request, rank=rank)) for rank in range(2)]
    store.save(items, job_key=f"job{n}")
    print(f"committed job{n}", flush=True)
"""


@pytest.mark.reliability
def test_kills_at_random_moments_lose_nothing_committed(tmp_path) -> None:
    data = tmp_path / "data"
    committed: set[str] = set()
    rng = random.Random(7)
    start, adopted, temp_removed = 0, 0, 0
    for _ in range(KILLS):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(data), str(start)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert writer.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.15))  # somewhere inside a save: file, fsync, row
        writer.send_signal(signal.SIGKILL)
        out, _ = writer.communicate()
        committed |= {line.split()[1] for line in out.splitlines() if line.startswith("committed")}
        start += 10_000

        check = sqlite3.connect(data / "history.sqlite3")
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        check.close()
        with HistoryStore(data) as store:
            report = store.reconcile()
            assert not report.quarantined  # a complete file carries its metadata
            adopted += len(report.adopted)  # killed between a job's files and its rows
            temp_removed += report.temp_removed  # killed while a file was being written
            entries = store.list(limit=1_000_000)
            assert not any(e.missing for e in entries)  # no row without its file
            jobs: dict[str, int] = {}
            for entry in entries:
                jobs[entry.job_key] = jobs.get(entry.job_key, 0) + 1
                assert entry.path.is_file() and entry.request.prompt.startswith("job ")
            assert committed <= set(jobs)  # nothing committed was lost
            assert set(jobs.values()) <= {1, 2}  # a job cut short keeps its complete files
            on_disk = {p for p in (data / "images").rglob("*") if p.is_file()}
            assert on_disk == {e.path for e in entries}  # no stray or temporary file
    assert len(committed) >= KILLS  # the loop really wrote between kills
    print(
        f"\n{KILLS} kills, {len(committed)} jobs committed and kept, {adopted} complete "
        f"files of unfinished jobs adopted, {temp_removed} partial files removed"
    )
