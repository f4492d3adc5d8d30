"""Fixtures the app's tests share."""

from __future__ import annotations

import threading

import pytest


@pytest.fixture
def gated_window(qtbot, install_plugins, tmp_path):
    """The real window over the fake backend, whose model load waits for
    `fake_backend.LOAD_GATE` (set by the test, or at the end)."""
    install_plugins({"fake": "fake_backend:FakeBackend"})
    import fake_backend

    from studio.core.app import Core
    from studio.ui.main_window import MainWindow

    fake_backend.LOAD_GATE = threading.Event()
    core = Core.open(tmp_path / "home")
    window = MainWindow(core)
    qtbot.addWidget(window)
    window.show()
    yield window
    fake_backend.LOAD_GATE.set()
    fake_backend.LOAD_GATE = None
    window.close()
    core.close()
