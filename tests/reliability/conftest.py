"""The engine over a fresh history with the scriptable fake backend; its gates reset."""

from __future__ import annotations

from pathlib import Path

import pytest

from studio.core.engine import Engine
from studio.core.history import HistoryStore
from studio.core.registry import PluginRegistry


@pytest.fixture
def engine(install_plugins, tmp_path: Path):
    install_plugins()
    import fake_backend

    fake_backend.GATE = fake_backend.LOAD_GATE = None
    fake_backend.CALLS.clear()
    fake_backend.STEP_STARTED.clear()
    fake_backend.LOADING.clear()
    history = HistoryStore(tmp_path / "data")
    engine = Engine(PluginRegistry(), history, preview_interval=0.0)
    yield engine, fake_backend
    for gate in (fake_backend.GATE, fake_backend.LOAD_GATE):
        if gate is not None:
            gate.set()
    fake_backend.GATE = fake_backend.LOAD_GATE = None
    engine.shutdown()
    history.close()
