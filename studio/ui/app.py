"""Starting the desktop app: core first, then the window; heavy imports come later."""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from collections.abc import Sequence

from PySide6.QtCore import QLockFile, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QMessageBox

from studio.core.app import Core
from studio.core.paths import DataFolderError, StudioPaths
from studio.ui.crash_hooks import UncaughtErrors
from studio.ui.main_window import MainWindow, apply_theme

LOCK_FILE = "studio.lock"
EXIT_ALREADY_RUNNING = 3
EXIT_CANNOT_START = 2


def run(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="main.py", description="Studio desktop app")
    parser.add_argument("--data-dir", help="keep history and settings here ($STUDIO_HOME)")
    parser.add_argument(
        "--startup-report",
        action="store_true",
        help="print start-up figures as JSON once the window is shown, then quit",
    )
    args, qt_args = parser.parse_known_args(argv)
    started = time.perf_counter()
    app = QApplication([sys.argv[0], *qt_args])
    app.setApplicationName("Studio")
    try:
        paths = StudioPaths.resolve(args.data_dir).ensure()
    except DataFolderError as error:
        _cannot_start(str(error))
        return EXIT_CANNOT_START
    lock = QLockFile(str(paths.data / LOCK_FILE))
    lock.setStaleLockTime(0)  # stale only when its process is gone (e.g. after a crash)
    if not lock.tryLock(200):
        _already_running(paths)
        return EXIT_ALREADY_RUNNING
    core = Core.open(args.data_dir, executor=None)  # the settings' choice: a worker process
    apply_theme(core.settings.theme)
    window = MainWindow(core)
    uncaught = UncaughtErrors()
    uncaught.caught.connect(window.show_uncaught)
    uncaught.install()
    window.show()
    gc.freeze()  # start-up's objects live on: full collections need not walk them (stalls)
    if args.startup_report:
        QTimer.singleShot(0, lambda: _report_and_quit(app, started))
    try:
        return app.exec()
    finally:
        uncaught.uninstall()
        core.close()
        lock.unlock()


def _cannot_start(text: str) -> None:
    """A data folder that cannot be used: said on the terminal and in a dialog."""
    print(f"studio: {text}", file=sys.stderr)
    if QGuiApplication.platformName() != "offscreen":
        QMessageBox.critical(None, "Studio cannot start", text)


def _already_running(paths: StudioPaths) -> None:
    """Two windows on one history would each reconcile and write it: one at a time."""
    text = (
        f"Studio is already running with the history in {paths.data}. Use that window, "
        "or start this one with --data-dir for another history."
    )
    print(f"studio: {text}", file=sys.stderr)
    if QGuiApplication.platformName() != "offscreen":  # no screen, nobody to click
        QMessageBox.warning(None, "Studio is already running", text)


def _report_and_quit(app: QApplication, started: float) -> None:
    app.processEvents()  # let the first paint happen
    report = {
        "window_shown_s": round(time.perf_counter() - started, 4),
        "torch_imported": "torch" in sys.modules,
    }
    print(json.dumps(report), flush=True)
    app.quit()
