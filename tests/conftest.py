"""Shared test set-up: offscreen Qt, one torch thread, a private data folder per test."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("OMP_NUM_THREADS", "1")

FAKES = Path(__file__).parent / "fakes"
FAKE_BACKENDS = {
    "fake": "fake_backend:FakeBackend",
    "fake-text": "fake_backend:FakeTextOnly",
    "broken": "broken_import:Anything",
    "exits": "exit_on_import:Anything",
    "notabackend": "not_a_backend:NotABackend",
}


def pytest_configure(config: pytest.Config) -> None:
    if importlib.util.find_spec("torch") is not None:
        import torch

        torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def studio_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own STUDIO_HOME: no test touches a real user's history."""
    home = tmp_path / "studio-home"
    monkeypatch.setenv("STUDIO_HOME", str(home))
    return home


def write_distribution(folder: Path, entry_points: dict[str, str]) -> None:
    """A minimal installed distribution declaring backends, found by importlib.metadata."""
    info = folder / "studio_test_plugins-1.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    metadata = "Metadata-Version: 2.1\nName: studio-test-plugins\nVersion: 1.0\n"
    (info / "METADATA").write_text(metadata)
    lines = ["[studio.backends]", *(f"{k} = {v}" for k, v in entry_points.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def install_plugins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., dict[str, str]]]:
    """Declare test backends for this process; returns the environment for a subprocess."""

    def install(entry_points: dict[str, str] | None = None) -> dict[str, str]:
        site = tmp_path / "site"
        write_distribution(site, FAKE_BACKENDS if entry_points is None else entry_points)
        monkeypatch.syspath_prepend(str(FAKES))
        monkeypatch.syspath_prepend(str(site))
        path = os.pathsep.join([str(site), str(FAKES), os.environ.get("PYTHONPATH", "")])
        return {**os.environ, "PYTHONPATH": path}

    yield install
    for name in ("fake_backend", "broken_import", "exit_on_import", "not_a_backend"):
        sys.modules.pop(name, None)
