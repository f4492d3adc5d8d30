"""Two app windows on one history: the second says so and leaves; the CLI may run beside
the app (SQLite's locking keeps their writes apart)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def launch(home: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "--data-dir", str(home), *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.reliability
def test_a_second_window_on_the_same_history_says_so_and_leaves(tmp_path) -> None:
    from studio.api import EXIT_OK
    from studio.cli import main

    home = tmp_path / "home"
    first = launch(home)
    try:
        deadline = time.monotonic() + 30
        while not (home / "data" / "studio.lock").exists():
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()
            time.sleep(0.05)
        second = launch(home, "--startup-report")
        _, err = second.communicate(timeout=30)
        assert second.returncode == 3
        assert "already running with the history in" in err
        assert main(["history", "list", "--data-dir", str(home)]) == EXIT_OK  # the CLI may
        other = launch(tmp_path / "other", "--startup-report")  # another history may too
        out, err = other.communicate(timeout=30)
        assert other.returncode == 0 and "window_shown_s" in out, err
    finally:
        first.kill()
        first.wait()
    after_crash = launch(home, "--startup-report")  # a killed owner leaves no lock behind
    out, err = after_crash.communicate(timeout=30)
    assert after_crash.returncode == 0 and "window_shown_s" in out, err
