"""The app starts, shows its window, and has not imported torch by then."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from studio.core.app import Core
from studio.ui.main_window import MainWindow

ROOT = Path(__file__).resolve().parents[2]


def test_main_window_shows_backends_and_history(qtbot, tmp_path) -> None:
    core = Core.open(tmp_path / "home")
    try:
        window = MainWindow(core)
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        assert window.windowTitle() == "Studio"
        assert window.isVisible()
    finally:
        core.close()


def test_main_py_shows_a_window_before_torch_is_imported(tmp_path) -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run(
        [sys.executable, "main.py", "--startup-report", "--data-dir", str(tmp_path / "h")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["torch_imported"] is False
    assert report["window_shown_s"] > 0


def test_main_py_says_why_a_data_folder_cannot_be_used(tmp_path) -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    done = subprocess.run(
        [sys.executable, "main.py", "--data-dir", str(blocker)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "cannot keep files in" in done.stderr and "Traceback" not in done.stderr
