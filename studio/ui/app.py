"""Starting the desktop app: core first, then the window; heavy imports come later."""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from collections.abc import Sequence

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from studio.core.app import Core
from studio.ui.main_window import MainWindow, apply_theme


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
    core = Core.open(args.data_dir)
    apply_theme(core.settings.theme)
    window = MainWindow(core)
    window.show()
    gc.freeze()  # start-up's objects live on: full collections need not walk them (stalls)
    if args.startup_report:
        QTimer.singleShot(0, lambda: _report_and_quit(app, started))
    try:
        return app.exec()
    finally:
        core.close()


def _report_and_quit(app: QApplication, started: float) -> None:
    app.processEvents()  # let the first paint happen
    report = {
        "window_shown_s": round(time.perf_counter() - started, 4),
        "torch_imported": "torch" in sys.modules,
    }
    print(json.dumps(report), flush=True)
    app.quit()
