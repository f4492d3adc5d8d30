"""Before and after in the viewer: the original picture left of the divider, the result
right of it, at the place the divider was dragged to, scaled to the result's size."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QImage
from PySide6.QtTest import QTest

from studio.core.history import HistoryEntry
from studio.core.inputs import InputStore
from studio.core.metadata import ImageMetadata
from studio.core.request import GenerationRequest
from studio.ui.compare_view import original_of
from studio.ui.viewer import Viewer

LEFT, NONE = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
RED, BLUE = (220, 30, 30), (30, 30, 220)


def entry_made_from_a_picture(tmp_path: Path) -> tuple[HistoryEntry, InputStore]:
    store = InputStore(tmp_path / "inputs")
    picture = store.add(Image.new("RGB", (40, 30), RED))  # another size and aspect
    result = tmp_path / "result.png"
    Image.new("RGB", (64, 64), BLUE).save(result)
    request = GenerationRequest("a room", image=picture, strength=0.5)
    return HistoryEntry(1, 0.0, result, ImageMetadata(request), "j"), store


@pytest.fixture
def viewer(qtbot, tmp_path):
    entry, store = entry_made_from_a_picture(tmp_path)
    viewer = Viewer()
    viewer.original = lambda e: original_of(store, e)
    qtbot.addWidget(viewer)
    viewer.resize(700, 500)
    viewer.show()
    qtbot.waitExposed(viewer)
    viewer.show_entry(entry)
    return viewer


def colour_at(viewer: Viewer, scene_x: float, scene_y: float = 32) -> tuple[int, int, int]:
    grab: QImage = viewer.view.viewport().grab().toImage()
    point = viewer.view.mapFromScene(QPointF(scene_x, scene_y))
    c = QColor(grab.pixel(point))
    return c.red(), c.green(), c.blue()


def drag_divider(viewer: Viewer, qtbot, from_x: float, to_x: float) -> None:
    port = viewer.view.viewport()
    start = viewer.view.mapFromScene(QPointF(from_x, 32))
    end = viewer.view.mapFromScene(QPointF(to_x, 32))
    QTest.mousePress(port, LEFT, NONE, start)
    for t in (0.5, 1.0):
        QTest.mouseMove(port, start + QPoint(round((end.x() - start.x()) * t), 0))
    QTest.mouseRelease(port, LEFT, NONE, end)
    qtbot.wait(20)


def near(colour: tuple[int, int, int], wanted: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= 12 for a, b in zip(colour, wanted, strict=True))


def test_the_divider_shows_the_original_left_and_the_result_right(viewer, qtbot) -> None:
    compare = viewer.actions_by_name["compare"]
    assert compare.isEnabled() and not compare.isChecked()
    assert near(colour_at(viewer, 10), BLUE)  # off: the result only
    QTest.keyClick(viewer.view, Qt.Key.Key_C)
    assert compare.isChecked() and viewer.compare_item is not None
    assert viewer.compare_item.boundingRect().size().toSize().width() == 64  # the result's
    assert near(colour_at(viewer, 10), RED) and near(colour_at(viewer, 54), BLUE)
    drag_divider(viewer, qtbot, 32, 16)
    assert viewer.compare_item.divider_x() == pytest.approx(16, abs=1.5)
    assert near(colour_at(viewer, 10), RED) and near(colour_at(viewer, 22), BLUE)
    drag_divider(viewer, qtbot, 16, 50)
    assert viewer.compare_item.divider_x() == pytest.approx(50, abs=1.5)
    assert near(colour_at(viewer, 44), RED) and near(colour_at(viewer, 56), BLUE)
    assert near(colour_at(viewer, 1, 1), RED) and near(colour_at(viewer, 44, 62), RED)
    viewer.view.set_zoom(2.0)  # the same scene: it follows the viewer's zoom
    assert near(colour_at(viewer, 44), RED) and near(colour_at(viewer, 56), BLUE)
    compare.setChecked(False)
    assert viewer.compare_item is None and near(colour_at(viewer, 44), BLUE)


def test_compare_is_off_for_an_image_made_from_text(viewer, tmp_path) -> None:
    entry = HistoryEntry(2, 0.0, viewer.entry.path, ImageMetadata(GenerationRequest("x")), "j")
    viewer.actions_by_name["compare"].setChecked(True)
    viewer.show_entry(entry)
    assert not viewer.actions_by_name["compare"].isEnabled() and viewer.compare_item is None
