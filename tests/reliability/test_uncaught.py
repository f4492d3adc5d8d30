"""An exception nobody caught, in a worker thread or in a slot: shown, logged, survived."""

from __future__ import annotations

import threading

import pytest

from studio.core.app import LOG_FILE, Core
from studio.ui.crash_hooks import UncaughtErrors
from studio.ui.main_window import MainWindow


@pytest.mark.reliability
def test_uncaught_exceptions_are_shown_logged_and_survived(qtbot, tmp_path) -> None:
    core = Core.open(tmp_path / "home")
    window = MainWindow(core)
    qtbot.addWidget(window)
    hooks = UncaughtErrors()
    hooks.caught.connect(window.show_uncaught)
    hooks.install()
    try:

        def broken_worker() -> None:
            raise ZeroDivisionError("a worker divided by zero")

        worker = threading.Thread(target=broken_worker, name="studio-test-worker")
        worker.start()
        worker.join()
        qtbot.waitUntil(lambda: "divided by zero" in window.message.text(), timeout=5_000)
        assert "thread studio-test-worker" in window.message.text()
        assert "the details are in" in window.message.text()
        try:
            raise KeyError("a slot that failed")
        except KeyError as error:  # as PySide6 hands an exception in a slot to the hook
            import sys

            sys.excepthook(type(error), error, error.__traceback__)
        qtbot.waitUntil(lambda: "a slot that failed" in window.message.text(), timeout=5_000)
        log = (core.paths.logs / LOG_FILE).read_text()
        assert "ZeroDivisionError: a worker divided by zero" in log and "Traceback" in log
        window.prompt.setPlainText("still working")  # the window lives on
        assert window.prompt.toPlainText() == "still working"
    finally:
        hooks.uninstall()
        core.close()
