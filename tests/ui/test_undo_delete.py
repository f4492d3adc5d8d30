"""Undo after delete: deleted entries are hidden, come back on Undo (or after a crash),
and go for good, rows and files, once the undo window passes or the app closes."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from studio.core.app import Core
from studio.core.history import HistoryEntry, HistoryStore
from studio.core.metadata import ImageMetadata
from studio.core.request import GenerationRequest
from studio.ui.gallery import GalleryPanel
from studio.ui.main_window import MainWindow


@pytest.fixture
def core(qapp, tmp_path):
    core = Core.open(tmp_path / "home")
    core.reconciled.result()
    yield core
    core.close()


def saved(core: Core, n: int) -> list[HistoryEntry]:
    entries: list[HistoryEntry] = []
    for i in range(n):
        request = GenerationRequest(f"a shape number {i}", seed=100 + i, backend="fake")
        image = Image.new("RGB", (16, 16), (40 * i, 90, 200))
        entries += core.history.save([(image, ImageMetadata(request))], f"job-{i}")
    return entries


def test_hidden_entries_leave_listings_and_come_back_after_a_crash(core, tmp_path) -> None:
    first, second = saved(core, 2)
    core.history.hide([first.id])
    assert core.history.count() == 1 and [e.id for e in core.history.list()] == [second.id]
    assert [e.id for e in core.history.search("shape")] == [second.id]
    # The app dies before the delete: another process opening the history sees it all.
    with HistoryStore(core.paths.data) as reopened:
        assert reopened.count() == 2
    assert Path(first.path).is_file()
    core.history.unhide([first.id])
    assert core.history.count() == 2


def test_the_gallery_deletes_undoes_and_deletes_for_good(qtbot, core) -> None:
    entries = saved(core, 3)
    panel = GalleryPanel(core)
    qtbot.addWidget(panel)
    panel.show()
    qtbot.waitUntil(lambda: panel.model.rowCount() == 3)
    panel.view.selectAll()
    assert panel.delete_selected() == 3
    assert panel.model.total() == 0 and core.history.count() == 0
    assert all(Path(e.path).is_file() for e in entries)  # nothing gone yet
    panel.view.setFocus()
    panel.undo_action.trigger()  # Ctrl+Z in the gallery
    qtbot.waitUntil(lambda: panel.model.rowCount() == 3)
    assert panel.model.total() == 3 and not panel.pending.pending()
    panel.view.clearSelection()
    panel.view.setCurrentIndex(panel.model.index(0))
    gone = panel.model.entry(0)
    assert panel.delete_selected() == 1
    panel.pending.timer.setInterval(10)  # the undo window passes
    panel.pending.timer.start()
    qtbot.waitUntil(lambda: not panel.pending.pending())
    assert core.history.get(gone.id) is None and not Path(gone.path).exists()
    assert core.history.count() == 2 and panel.model.total() == 2
    assert not panel.undo()  # nothing left to undo


@pytest.fixture
def window(qtbot, install_plugins, tmp_path):
    install_plugins({"fake": "fake_backend:FakeBackend"})
    core = Core.open(tmp_path / "home")
    core.reconciled.result()
    core.settings.backend = "fake"
    window = MainWindow(core)
    qtbot.addWidget(window)
    window.show()
    yield window
    window.close()
    core.close()


def test_the_viewers_delete_offers_undo_and_closing_deletes_for_good(qtbot, window) -> None:
    core = window.core
    first, second = saved(core, 2)
    window.open_in_viewer(first)
    window.delete_entry(first)  # the viewer's Delete: no question, an Undo instead
    assert window.undo_bar.isVisible() and "1 image deleted" in window.undo_bar.label.text()
    assert core.history.count() == 1
    window.undo_bar.button.click()
    assert not window.undo_bar.isVisible() and core.history.count() == 2
    window.delete_entry(second)
    window.close()  # the app quits inside the undo window: the delete happens now
    assert core.history.get(second.id) is None and not Path(second.path).exists()
    assert core.history.get(first.id) is not None and Path(first.path).is_file()
