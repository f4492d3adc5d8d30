"""The history gallery's model: paging, search, filters, thumbnails off the GUI thread."""

from __future__ import annotations

import threading

import pytest
from PIL import Image
from PySide6.QtCore import QModelIndex, Qt

from studio.core.app import Core
from studio.core.metadata import ImageMetadata
from studio.core.request import GenerationRequest
from studio.ui.gallery_model import EntryRole, GalleryModel

T0 = 1_750_000_000.0


def metadata(prompt: str, created_at: float, **request: object) -> ImageMetadata:
    fields: dict[str, object] = {"seed": 7, "backend": "fake", "model": "tiny"} | request
    return ImageMetadata(GenerationRequest(prompt, **fields), created_at=created_at)  # type: ignore[arg-type]


@pytest.fixture
def core(qapp, tmp_path):
    core = Core.open(tmp_path / "home")
    core.reconciled.result()  # the start-up reconciliation must not race the rows below
    yield core
    core.close()


def add_rows(core: Core, prompts: list[str], **request: object) -> list[int]:
    """Rows without files (as an import would add them), newest last."""
    start = T0 + core.history.count()
    return core.history.insert_records(
        (metadata(p, start + i, **request), f"job{start + i}", f"images/x/{start + i}.png")
        for i, p in enumerate(prompts)
    )


def test_pages_in_newest_first_and_passes_the_model_tester(core, qtmodeltester) -> None:
    ids = add_rows(core, [f"prompt {i}" for i in range(450)])
    model = GalleryModel(core, page=200)
    assert model.rowCount() == 0 and model.canFetchMore(QModelIndex())
    model.fetchMore(QModelIndex())
    assert model.rowCount() == 200
    while model.canFetchMore(QModelIndex()):
        model.fetchMore(QModelIndex())
    assert model.rowCount() == model.total() == 450
    assert [model.entry(r).id for r in range(450)] == ids[::-1]
    assert model.index(0).data(EntryRole).request.prompt == "prompt 449"
    assert model.index(0).data(Qt.ItemDataRole.ToolTipRole) == "prompt 449"
    qtmodeltester.check(model, force_py=True)


def test_search_and_filters_reset_the_listing(core) -> None:
    add_rows(core, ["a red fox", "an owl at night"], backend="onnx")
    fox = add_rows(core, ["a fox in the snow"], backend="torch")
    model = GalleryModel(core)
    model.set_search("fox")
    model.fetchMore(QModelIndex())
    assert model.rowCount() == 2
    model.set_search("fox", backend="torch")
    model.fetchMore(QModelIndex())
    assert [model.entry(r).id for r in range(model.rowCount())] == fox
    core.history.set_favourite(fox[0], True)
    model.set_search("", favourites_only=True)
    model.fetchMore(QModelIndex())
    assert model.total() == 1 and model.row_of(fox[0]) == 0


def test_thumbnails_are_made_off_the_gui_thread_then_shown(qtbot, core) -> None:
    image = Image.new("RGB", (64, 64), (200, 30, 30))
    request = GenerationRequest("a red square", seed=3, backend="fake")
    (entry,) = core.history.save([(image, ImageMetadata(request))], "job-a")
    model = GalleryModel(core)
    model.fetchMore(QModelIndex())
    threads: list[str] = []
    make = core.thumbnails.get

    def recording_get(*args):
        threads.append(threading.current_thread().name)
        return make(*args)

    core.thumbnails.get = recording_get  # type: ignore[method-assign]
    placeholder = model.index(0).data(Qt.ItemDataRole.DecorationRole)
    assert not threads  # asking for data starts no work: the view names the rows it shows
    with qtbot.waitSignal(model.dataChanged, timeout=10_000):
        model.request_thumbnails(0, 10)
    thumbnail = model.index(0).data(Qt.ItemDataRole.DecorationRole)
    assert thumbnail.cacheKey() != placeholder.cacheKey()
    assert thumbnail.toImage().pixelColor(10, 10).getRgb()[:3] == (200, 30, 30)
    assert thumbnail.toImage().pixelColor(0, 0).getRgb()[:3] != (200, 30, 30)  # its frame
    assert threads and threads[0] != threading.main_thread().name
    assert core.thumbnails.path_for(entry.id).is_file()  # and kept on disk for next time


def test_a_view_asking_for_more_after_the_store_closed_gets_nothing(core) -> None:
    """A closing window's list view may still ask for rows once the store is closed."""
    add_rows(core, [f"prompt {i}" for i in range(30)])
    model = GalleryModel(core, page=10)
    model.fetchMore(QModelIndex())
    assert model.canFetchMore() and model.rowCount() == 10
    core.close()
    assert not model.canFetchMore()
    model.fetchMore(QModelIndex())  # no error, no rows
    assert model.rowCount() == 10


def test_a_missing_image_keeps_its_placeholder(qtbot, core, monkeypatch) -> None:
    from studio.ui import gallery_model

    add_rows(core, ["a file that was never written"])
    model = GalleryModel(core)
    model.fetchMore(QModelIndex())
    first = model.index(0).data(Qt.ItemDataRole.DecorationRole)
    changed: list[object] = []
    model.dataChanged.connect(lambda *args: changed.append(args))
    with qtbot.waitSignal(model.thumbnail_failed, timeout=10_000) as failed:
        model.request_thumbnails(0, 0)
    assert failed.args == [model.entry(0).id]  # the worker tried, and could not read it
    assert changed == [] and not model.has_thumbnail(model.entry(0).id)
    assert model.index(0).data(Qt.ItemDataRole.DecorationRole).cacheKey() == first.cacheKey()
    started: list[object] = []
    monkeypatch.setattr(gallery_model, "run_in_background", lambda *a: started.append(a))
    model.request_thumbnails(0, 0)
    assert started == []  # not tried again each time the view scrolls by


def test_a_drag_carries_the_file_url_the_image_and_the_prompt(core) -> None:
    image = Image.new("RGB", (64, 64), (30, 30, 200))
    request = GenerationRequest("a blue square", seed=3, backend="fake")
    (entry,) = core.history.save([(image, ImageMetadata(request))], "job-b")
    model = GalleryModel(core)
    model.fetchMore(QModelIndex())
    data = model.mimeData([model.index(0)])
    assert [url.toLocalFile() for url in data.urls()] == [str(entry.path)]
    assert data.imageData().pixelColor(5, 5).getRgb()[:3] == (30, 30, 200)
    assert data.text() == "a blue square"
    assert model.flags(model.index(0)) & Qt.ItemFlag.ItemIsDragEnabled


def test_the_panel_searches_as_you_type_favourites_and_deletes(qtbot, core) -> None:
    from studio.ui.gallery import GalleryPanel

    add_rows(core, ["a red fox", "an owl at night", "a fox in the snow"])
    panel = GalleryPanel(core)
    qtbot.addWidget(panel)
    panel.show()
    qtbot.waitUntil(lambda: panel.model.rowCount() == 3)  # the view fetched the first page
    assert panel.count.text() == "3 images"
    qtbot.keyClicks(panel.search, "fox")
    qtbot.waitUntil(lambda: panel.model.total() == panel.model.rowCount() == 2, timeout=5_000)
    panel.view.selectAll()
    panel.toggle_favourite()
    panel.search.clear()
    panel.favourites.setChecked(True)
    qtbot.waitUntil(lambda: panel.model.total() == 2 and panel.model.rowCount() == 2)
    panel.view.setCurrentIndex(panel.model.index(0))
    assert panel.delete_selected(confirm=False) == 1
    assert panel.model.total() == 1 and core.history.count() == 2
    qtbot.waitUntil(lambda: panel.model.rowCount() == 1)
    with qtbot.waitSignal(panel.entry_activated) as activated:
        panel.view.activated.emit(panel.model.index(0))
    assert "fox" in activated.args[0].request.prompt


def saved_entries(core: Core, n: int):
    from studio.core.history import HistoryEntry

    entries: list[HistoryEntry] = []
    for i in range(n):
        request = GenerationRequest(f"a shape number {i}", seed=100 + i, backend="fake")
        image = Image.new("RGB", (64, 64), (40 * i, 90, 200))
        entries += core.history.save([(image, ImageMetadata(request))], f"job-{i}")
    return entries


def test_export_writes_files_and_a_contact_sheet(qtbot, core, tmp_path) -> None:
    from studio.core.metadata import read_metadata
    from studio.ui.export_dialog import ExportDialog

    entries = saved_entries(core, 3)
    dialog = ExportDialog(core, entries)
    qtbot.addWidget(dialog)
    dialog.folder.setText(str(tmp_path / "out"))
    dialog.format.setCurrentText("WebP")
    dialog.template.setText("{seed}_{prompt}")
    assert dialog.preview.text() == "e.g. 100_a-shape-number-0.webp"
    dialog.template.setText("{nope}")
    assert not dialog.buttons.button(dialog.buttons.StandardButton.Ok).isEnabled()
    dialog.template.setText("{seed}")
    dialog.sheet.setChecked(True)
    dialog.sheet_format.setCurrentText("PDF")
    with qtbot.waitSignal(dialog.accepted, timeout=10_000):
        dialog.export()
    names = sorted(p.name for p in dialog.written)
    assert names == ["100.webp", "101.webp", "102.webp", "contact-sheet.pdf"]
    assert read_metadata(tmp_path / "out" / "101.webp").seed == 101
    assert core.settings.export_format == "webp"


def test_export_failure_leaves_nothing_and_says_why(qtbot, core, tmp_path) -> None:
    from studio.ui.export_dialog import ExportDialog

    entries = saved_entries(core, 2)
    entries[1].path.write_bytes(b"damaged")  # the second image cannot be read
    dialog = ExportDialog(core, entries)
    qtbot.addWidget(dialog)
    dialog.folder.setText(str(tmp_path / "out"))
    dialog.export()
    qtbot.waitUntil(lambda: "Nothing was exported" in dialog.status.text(), timeout=10_000)
    assert not (tmp_path / "out").exists()  # nor the folder it made
    assert dialog.buttons.isEnabled()


def test_the_panel_filters_by_backend_and_period(qtbot, core) -> None:
    import time

    from studio.ui.gallery import GalleryPanel

    old = core.history.insert_records(
        [
            (
                metadata("an old fox", time.time() - 40 * 86_400, backend="onnx"),
                "j-old",
                "images/x/o.png",
            )
        ]
    )
    new = core.history.insert_records(
        [(metadata("a new fox", time.time() - 60, backend="torch"), "j-new", "images/x/n.png")]
    )
    panel = GalleryPanel(core)
    qtbot.addWidget(panel)
    panel.show()
    qtbot.waitUntil(lambda: panel.model.rowCount() == 2)
    panel.period.setCurrentIndex(panel.period.findData(7))
    qtbot.waitUntil(lambda: panel.model.total() == 1 and panel.model.rowCount() == 1)
    assert panel.model.entry(0).id == new[0]
    panel.period.setCurrentIndex(0)
    panel.backend.addItem("onnx", "onnx")  # the test's rows name backends not installed
    panel.backend.setCurrentIndex(panel.backend.findData("onnx"))
    qtbot.waitUntil(lambda: panel.model.total() == 1 and panel.model.rowCount() == 1)
    assert panel.model.entry(0).id == old[0]


def test_thumbnails_are_sharp_on_high_dpi_screens(qtbot, core) -> None:
    saved_entries(core, 1)
    model = GalleryModel(core, icon_side=128)
    model.fetchMore(QModelIndex())
    model.pixel_ratio = 2.0  # what a 200 % screen reports
    with qtbot.waitSignal(model.dataChanged, timeout=10_000):
        model.request_thumbnails(0, 0)
    pixmap = model.index(0).data(Qt.ItemDataRole.DecorationRole)
    assert (pixmap.width(), pixmap.devicePixelRatio()) == (256, 2.0)  # 128 logical pixels
    assert pixmap.deviceIndependentSize().width() == 128
