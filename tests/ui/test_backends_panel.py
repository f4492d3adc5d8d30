"""The backends panel shows each backend's status, models and errors."""

from __future__ import annotations

import pytest
from support.model_library import SD_TENSOR

from studio.core.app import Core
from studio.core.settings import Settings
from studio.ui.backends_panel import BackendsDialog


@pytest.fixture
def opened(qtbot, install_plugins, tmp_path):
    """(core, dialog) over the fake plugins in a fresh data folder."""
    install_plugins()  # fake, broken (raises on import), exits (sys.exit on import), ...
    with Core.open(tmp_path / "home") as core:
        dialog = BackendsDialog(core)
        qtbot.addWidget(dialog)
        yield core, dialog


def test_ready_and_failed_backends_are_shown_with_their_errors(qtbot, opened):
    core, dialog = opened
    qtbot.waitUntil(lambda: bool(dialog.reports), timeout=10_000)
    by_id = {r.id: r for r in dialog.reports}
    assert by_id["fake"].status == "ready" and by_id["fake"].device == "cpu"
    assert [m.name for m in by_id["fake"].models] == ["Tiny fake"]
    assert by_id["broken"].status == "failed" and by_id["broken"].error
    assert by_id["exits"].status == "failed"
    texts = [dialog.tree.topLevelItem(i).text(1) for i in range(dialog.tree.topLevelItemCount())]
    assert any(t.startswith("failed: ") for t in texts)
    broken = list(by_id).index("broken")
    dialog.tree.setCurrentItem(dialog.tree.topLevelItem(broken))
    assert "Traceback" in dialog.details.toPlainText()
    assert str(core.paths.data / "models") in dialog.folders.text()


def test_models_and_folders_are_added_and_pickles_refused(qtbot, opened, tmp_path):
    import pickle

    import numpy as np
    from safetensors.numpy import save_file

    core, dialog = opened
    checkpoint = tmp_path / "dream.safetensors"  # named as a checkpoint: the SD plugin takes it
    save_file({SD_TENSOR: np.zeros(2, np.float32)}, str(checkpoint))
    dialog.add(checkpoint)
    qtbot.waitUntil(lambda: "Added dream" in dialog.details.toPlainText(), timeout=5_000)
    pickled = tmp_path / "old.ckpt"
    pickled.write_bytes(pickle.dumps({"w": 1}))
    dialog.add(pickled)
    qtbot.waitUntil(lambda: "Not added" in dialog.details.toPlainText(), timeout=5_000)
    assert "pickled" in dialog.details.toPlainText()
    collection = tmp_path / "collection"
    collection.mkdir()
    (collection / "old-too.pt").write_bytes(pickle.dumps({"w": 2}))
    dialog.add(collection)
    qtbot.waitUntil(lambda: str(collection) in dialog.folders.text(), timeout=5_000)
    qtbot.waitUntil(lambda: any(not r.id for r in dialog.reports), timeout=5_000)
    (refused,) = [r for r in dialog.reports if not r.id]
    assert "old-too.pt" in refused.details and "pickled" in refused.details
    assert core.settings.model_paths == [str(checkpoint)]
    saved = Settings.load(core.paths.settings_file)
    assert saved.model_folders == [str(collection)]


def test_a_refused_pickle_is_offered_for_conversion(qtbot, opened, tmp_path):
    import torch

    core, dialog = opened
    assert dialog.convert.isHidden()
    checkpoint = tmp_path / "old.ckpt"
    torch.save({"state_dict": {SD_TENSOR: torch.ones(3)}}, checkpoint)
    dialog.add(checkpoint)
    qtbot.waitUntil(lambda: "Not added" in dialog.details.toPlainText(), timeout=5_000)
    assert not dialog.convert.isHidden() and "Convert to safetensors" in (
        dialog.details.toPlainText()
    )
    dialog.convert.click()
    qtbot.waitUntil(lambda: "Added old" in dialog.details.toPlainText(), timeout=10_000)
    assert "Converted old.ckpt to old.safetensors" in dialog.details.toPlainText()
    assert core.settings.model_paths == [str(tmp_path / "old.safetensors")]
    assert dialog.convert.isHidden()

    class Payload:  # what a malicious checkpoint hides: code run when unpickled
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    hostile = tmp_path / "hostile.ckpt"
    torch.save({"w": torch.ones(1), "x": Payload()}, hostile)
    dialog.add(hostile)
    qtbot.waitUntil(lambda: not dialog.convert.isHidden(), timeout=5_000)
    dialog.convert.click()
    qtbot.waitUntil(lambda: "Not converted" in dialog.details.toPlainText(), timeout=10_000)
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "hostile.safetensors").exists()


def test_model_hashes_are_computed_off_the_gui_thread_and_shown_when_ready(
    qtbot, install_plugins, tmp_path, monkeypatch
) -> None:
    import threading

    from support.model_library import library_files, short

    from studio.core import models
    from studio.ui.backends_panel import HASH_COLUMN, PENDING

    install_plugins({"library": "library_backend:FakeLibraryBackend"})
    gate, threads = threading.Event(), []
    real = models.file_sha256

    def gated(file, body_only=False, progress=None):  # a big file, as slow as it likes
        threads.append(threading.current_thread())
        gate.wait(10)
        return real(file, body_only, progress)

    with Core.open(tmp_path / "home") as core:
        files = library_files(core.paths.models)
        core.models().short_hash(core.models().find("other"))  # hashed before: shown at once
        monkeypatch.setattr(models, "file_sha256", gated)
        dialog = BackendsDialog(core)
        qtbot.addWidget(dialog)
        qtbot.waitUntil(lambda: bool(dialog.reports) and bool(threads), timeout=10_000)
        (row,) = [i for i, r in enumerate(dialog.reports) if r.id == "library"]
        backend = dialog.tree.topLevelItem(row)
        shown = {backend.child(i).text(0): backend.child(i).text(HASH_COLUMN) for i in range(4)}
        assert shown["dream"] == PENDING and shown["other"] == short(files["other"])
        gate.set()
        qtbot.waitUntil(lambda: backend.child(0).text(HASH_COLUMN) != PENDING, timeout=10_000)
        assert backend.child(0).text(HASH_COLUMN) == short(files["dream"])
        qtbot.waitUntil(
            lambda: PENDING not in [backend.child(i).text(HASH_COLUMN) for i in range(4)],
            timeout=10_000,
        )
        assert dialog.reports[row].models[0].hash == short(files["dream"])
        assert threading.main_thread() not in threads
