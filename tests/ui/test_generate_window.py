"""The minimal prompt canvas drives the real engine through the Qt bridge."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import Qt

from studio.core.app import Core
from studio.ui.main_window import MainWindow


@pytest.fixture
def window(qtbot, install_plugins, tmp_path):
    install_plugins({"fake": "fake_backend:FakeBackend"})
    import fake_backend

    fake_backend.GATE = None
    core = Core.open(tmp_path / "home")
    core.settings.backend, core.settings.width, core.settings.height = "fake", 16, 16
    window = MainWindow(core)
    qtbot.addWidget(window)
    window.show()
    yield window
    if fake_backend.GATE is not None:
        fake_backend.GATE.set()
    fake_backend.GATE = None
    core.close()


def test_ctrl_enter_generates_and_shows_the_results(qtbot, window) -> None:
    qtbot.keyClicks(window.prompt, "two blue squares")
    qtbot.keyClick(window.prompt, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: all(t.pixmap() and not t.pixmap().isNull() for t in window.tiles),
                    timeout=10_000)  # fmt: skip
    assert window.progress.value() == window.progress.maximum()
    assert window.core.history.count() == 4
    assert "seed" in window.tiles[0].toolTip()


def test_errors_are_shown_not_raised(qtbot, window) -> None:
    window.generate()  # empty prompt
    assert "prompt is empty" in window.message.text()
    window.prompt.setPlainText("a circle")
    window.core.settings.width = 12  # not a multiple of 8 for the fake backend
    window.generate()
    qtbot.waitUntil(lambda: "Generation failed" in window.message.text(), timeout=10_000)
    assert "multiple of 8" in window.message.text()


def test_escape_cancels_a_running_job(qtbot, window) -> None:
    import fake_backend

    fake_backend.GATE = threading.Event()
    fake_backend.STEP_STARTED.clear()
    window.prompt.setPlainText("a circle")
    window.generate()
    assert fake_backend.STEP_STARTED.wait(10)
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    fake_backend.GATE.set()
    qtbot.waitUntil(lambda: window.message.text() == "Cancelled.", timeout=10_000)
    assert window.core.history.count() == 0
