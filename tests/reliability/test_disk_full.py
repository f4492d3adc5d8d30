"""The disk fills up while saving: the error is reported, no partial file is left, the
database stays consistent, and saving works again once there is room. The "disk" is a
real limit on file size (RLIMIT_FSIZE) in a child process: writes past it fail as they
would on a full disk, without needing root to mount a small file system."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import resource, signal, sys
from pathlib import Path
import numpy as np
from PIL import Image
from studio.core.history import HistoryStore
from studio.core.metadata import ImageMetadata
from studio.core.request import GenerationRequest
store = HistoryStore(Path(sys.argv[1]))
small = Image.new("RGB", (16, 16))
meta = ImageMetadata(GenerationRequest("fits", seed=1, backend="fake"))
store.save([(small, meta)], "before")
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
limit = 200_000  # bytes per file: the noise image below needs about 770,000
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (512, 512, 3), np.uint8))
big = ImageMetadata(GenerationRequest("too big for the disk", seed=2, backend="fake"))
try:
    store.save([(small, meta), (noise, big)], "full")
    print("saved?!")
except OSError as error:
    print("error:", error.strerror)
store.save([(small, meta)], "after")  # room again for a small one
print("count", store.count())
"""


@pytest.mark.reliability
def test_a_full_disk_while_saving_loses_nothing_and_leaves_nothing(tmp_path) -> None:
    data = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(data)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = done.stdout.splitlines()
    assert lines[0] == "error: File too large", done.stderr  # reported, as EFBIG / ENOSPC
    files = sorted(p.name for p in (data / "images").rglob("*") if p.is_file())
    assert not any(name.startswith(".tmp-") for name in files)  # no partial file
    conn = sqlite3.connect(data / "history.sqlite3")
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    jobs = [row[0] for row in conn.execute("SELECT job_key FROM images ORDER BY id")]
    assert jobs == ["before", "after"] and lines[1] == "count 2"
    # the small image of the failed job was complete: kept, and adopted at the next start
    assert len(files) == 3
