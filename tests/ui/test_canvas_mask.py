"""The input picture on the canvas and its mask, painted with synthesized mouse events."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from studio.core.app import Core
from studio.ui.canvas import Tool
from studio.ui.main_window import MainWindow

LEFT, RIGHT = Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton
NONE = Qt.KeyboardModifier.NoModifier
PHOTO = (2000, 1500)  # larger than the canvas paints at: the mask is scaled up when sent


@pytest.fixture
def window(qtbot, install_plugins, tmp_path):
    install_plugins({"fake": "fake_backend:FakeBackend"})
    core = Core.open(tmp_path / "home")
    core.settings.backend, core.settings.width, core.settings.height = "fake", 16, 16
    window = MainWindow(core)
    qtbot.addWidget(window)
    window.resize(1280, 760)
    window.show()
    qtbot.waitUntil(lambda: window.settings_panel.capabilities.image)
    yield window
    window.close()
    core.close()


def photo(tmp_path: Path, size: tuple[int, int] = PHOTO, name: str = "photo.png") -> Path:
    path = tmp_path / name
    Image.new("RGB", size, (90, 120, 150)).save(path)
    return path


def load(qtbot, window: MainWindow, path: Path):
    window.input_panel.load(path)
    qtbot.waitUntil(lambda: window.input_panel.picture is not None, timeout=10_000)
    canvas = window.input_panel.canvas
    qtbot.waitUntil(lambda: canvas.isVisible() and canvas.target().width() > 100)
    return canvas


def at(canvas, fx: float, fy: float) -> QPoint:
    """The widget point at a fraction of the shown picture."""
    t = canvas.target()
    return QPoint(round(t.x() + fx * t.width()), round(t.y() + fy * t.height()))


def drag(canvas, points: list[QPoint], button=LEFT) -> None:
    QTest.mousePress(canvas, button, NONE, points[0])
    for point in points[1:]:
        QTest.mouseMove(canvas, point)
    QTest.mouseRelease(canvas, button, NONE, points[-1])


def full(canvas) -> Image.Image:
    return canvas.mask.full_size(*PHOTO)


def value(canvas, mask: Image.Image, point: QPoint) -> int:
    return mask.getpixel(canvas.to_picture(QPointF(point)))


def test_a_stroke_lands_where_painted_and_undo_redo_restore_it(qtbot, window, tmp_path) -> None:
    canvas = load(qtbot, window, photo(tmp_path))
    assert window.input_panel.title.text() == "photo.png   2000 \u00d7 1500"
    assert canvas.mask.size().width() < PHOTO[0]  # painted at the shown resolution
    empty = canvas.mask.alpha_bytes()
    canvas.hardness = 1.0
    drag(canvas, [at(canvas, 0.2, 0.5), at(canvas, 0.5, 0.5), at(canvas, 0.8, 0.5)])
    mask = full(canvas)
    assert mask.mode == "L" and mask.size == PHOTO
    for fx in (0.2, 0.35, 0.5, 0.65, 0.8):
        assert value(canvas, mask, at(canvas, fx, 0.5)) == 255
    x, y = canvas.to_picture(QPointF(at(canvas, 0.5, 0.5)))
    assert abs(x - PHOTO[0] / 2) < 8 and abs(y - PHOTO[1] / 2) < 8  # in picture pixels
    for fx, fy in ((0.5, 0.1), (0.5, 0.9), (0.05, 0.5), (0.95, 0.5)):
        assert value(canvas, mask, at(canvas, fx, fy)) == 0
    painted = canvas.mask.alpha_bytes()
    assert window.input_panel.masked()

    QTest.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert canvas.mask.alpha_bytes() == empty  # exactly as before
    assert not full(canvas).getbbox() and not window.input_panel.masked()
    ctrl_shift = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
    QTest.keyClick(canvas, Qt.Key.Key_Z, ctrl_shift)
    assert canvas.mask.alpha_bytes() == painted
    assert value(canvas, full(canvas), at(canvas, 0.5, 0.5)) == 255


def test_the_eraser_and_the_right_button_remove_paint(qtbot, window, tmp_path) -> None:
    canvas = load(qtbot, window, photo(tmp_path))
    window.input_panel.set_tool(Tool.RECT)
    drag(canvas, [at(canvas, 0.1, 0.1), at(canvas, 0.9, 0.9)])
    window.input_panel.set_tool(Tool.ERASER)
    canvas.hardness = 1.0
    drag(canvas, [at(canvas, 0.3, 0.5), at(canvas, 0.7, 0.5)])
    mask = full(canvas)
    assert value(canvas, mask, at(canvas, 0.5, 0.5)) == 0
    assert value(canvas, mask, at(canvas, 0.5, 0.2)) == 255
    window.input_panel.set_tool(Tool.BRUSH)
    drag(canvas, [at(canvas, 0.5, 0.75), at(canvas, 0.6, 0.75)], button=RIGHT)
    assert value(canvas, full(canvas), at(canvas, 0.55, 0.75)) == 0


def test_rectangle_and_lasso_fill(qtbot, window, tmp_path) -> None:
    canvas = load(qtbot, window, photo(tmp_path))
    window.input_panel.set_tool(Tool.RECT)
    drag(canvas, [at(canvas, 0.1, 0.1), at(canvas, 0.3, 0.2), at(canvas, 0.4, 0.4)])
    mask = full(canvas)
    assert value(canvas, mask, at(canvas, 0.25, 0.25)) == 255
    assert value(canvas, mask, at(canvas, 0.5, 0.25)) == 0
    box = mask.getbbox()
    assert abs(box[0] - 0.1 * PHOTO[0]) < 10 and abs(box[3] - 0.4 * PHOTO[1]) < 10

    window.input_panel.set_tool(Tool.LASSO)
    corners = [at(canvas, 0.6, 0.6), at(canvas, 0.9, 0.6), at(canvas, 0.9, 0.9)]
    drag(canvas, corners)  # released at the last corner: the outline closes itself
    mask = full(canvas)
    assert value(canvas, mask, at(canvas, 0.85, 0.7)) == 255  # inside the triangle
    assert value(canvas, mask, at(canvas, 0.65, 0.85)) == 0  # beside it
    assert value(canvas, mask, at(canvas, 0.25, 0.25)) == 255  # the rectangle stays


def test_invert_clear_and_show(qtbot, window, tmp_path) -> None:
    canvas = load(qtbot, window, photo(tmp_path))
    panel = window.input_panel
    panel.set_tool(Tool.RECT)
    drag(canvas, [at(canvas, 0.0, 0.0), at(canvas, 0.5, 1.0)])
    panel.command_buttons["invert"].click()
    mask = full(canvas)
    assert value(canvas, mask, at(canvas, 0.25, 0.5)) == 0
    assert value(canvas, mask, at(canvas, 0.75, 0.5)) == 255
    panel.command_buttons["clear"].click()
    assert not full(canvas).getbbox() and not panel.masked()
    panel.command_buttons["undo"].click()
    assert value(canvas, full(canvas), at(canvas, 0.75, 0.5)) == 255
    panel.show_mask.setChecked(False)
    assert not canvas.mask_visible
    panel.show_mask.setChecked(True)
    assert canvas.mask_visible


def test_brackets_change_the_brush_size(qtbot, window, tmp_path) -> None:
    canvas = load(qtbot, window, photo(tmp_path))
    size = canvas.brush_size
    QTest.keyClick(canvas, "]")
    assert canvas.brush_size > size
    assert window.input_panel.size_slider.value() == canvas.brush_size
    QTest.keyClick(canvas, "[")
    QTest.keyClick(canvas, "[")
    assert canvas.brush_size < size
    for _ in range(60):
        QTest.keyClick(canvas, "[")
    assert canvas.brush_size == 2  # the smallest, not less


def wheel(canvas, point: QPoint, steps: int, modifiers=Qt.KeyboardModifier.ControlModifier):
    """`steps` notches of the wheel over `point` (up: positive)."""
    event = QWheelEvent(
        QPointF(point),
        QPointF(canvas.mapToGlobal(point)),
        QPoint(),
        QPoint(0, 120 * steps),
        Qt.MouseButton.NoButton,
        modifiers,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(canvas, event)


def test_painting_zoomed_in_lands_on_the_picture_pixels_under_the_pointer(
    qtbot, window, tmp_path
) -> None:
    canvas = load(qtbot, window, photo(tmp_path))
    canvas.hardness = 1.0
    fitted = canvas.target()
    pointer = at(canvas, 0.45, 0.4)  # off centre; far enough from the edges to stay put
    under = canvas.to_picture(QPointF(pointer))
    wheel(canvas, pointer, 6)  # Ctrl+wheel: about the pointer
    assert canvas.target().width() > 3 * fitted.width()
    x, y = canvas.to_picture(QPointF(pointer))
    assert abs(x - under[0]) <= 2 and abs(y - under[1]) <= 2  # the same pixel stays under it

    # A 20 px stroke on screen, zoomed in: a short, thin line in the picture, where it was
    canvas.set_brush_size(20)
    start, end = pointer, pointer + QPoint(40, 0)
    drag(canvas, [start, pointer + QPoint(20, 0), end])
    mask = full(canvas)
    box = mask.getbbox()
    assert box is not None
    zoom = canvas.current_zoom()
    (x0, y0), (x1, _) = canvas.to_picture(QPointF(start)), canvas.to_picture(QPointF(end))
    assert abs(box[0] - (x0 - 10 / zoom)) < 4 and abs(box[2] - (x1 + 10 / zoom)) < 4
    assert abs((box[1] + box[3]) / 2 - y0) < 4 and box[3] - box[1] < 20 / zoom + 6
    assert mask.getpixel(under) == 255
    # Expected independently of the canvas's own mapping: a fraction of the fitted view
    fx = (pointer.x() - fitted.x()) / fitted.width()
    fy = (pointer.y() - fitted.y()) / fitted.height()
    assert abs(box[0] - fx * PHOTO[0]) < 20 / zoom + 6
    assert abs((box[1] + box[3]) / 2 - fy * PHOTO[1]) < 6


def test_zoom_keys_fit_and_actual_size(qtbot, window, tmp_path) -> None:
    canvas = load(qtbot, window, photo(tmp_path))
    ctrl = Qt.KeyboardModifier.ControlModifier
    fitted = canvas.target()
    QTest.keyClick(canvas, Qt.Key.Key_1, ctrl)  # 100 %: the picture's own pixels
    assert canvas.target().width() == PHOTO[0] and canvas.current_zoom() == 1.0
    QTest.keyClick(canvas, Qt.Key.Key_Minus, ctrl)
    assert abs(canvas.current_zoom() - 1 / 1.25) < 1e-9
    QTest.keyClick(canvas, Qt.Key.Key_Equal, ctrl)
    QTest.keyClick(canvas, Qt.Key.Key_Plus, ctrl)
    assert abs(canvas.current_zoom() - 1.25) < 1e-9
    QTest.keyClick(canvas, Qt.Key.Key_0, ctrl)  # fit again, and it follows the widget
    assert canvas.zoom is None and canvas.target() == fitted
    wheel(canvas, at(canvas, 0.5, 0.5), -20)
    assert canvas.target().width() < fitted.width()  # out, but not to nothing
    assert canvas.target().width() >= fitted.width() / 4 - 1


def test_middle_button_and_space_drag_pan_without_painting(qtbot, window, tmp_path) -> None:
    canvas = load(qtbot, window, photo(tmp_path))
    middle = Qt.MouseButton.MiddleButton
    centre = QPoint(canvas.width() // 2, canvas.height() // 2)
    drag(canvas, [centre, centre + QPoint(50, 30)], button=middle)
    assert canvas.zoom is None  # fitted, the whole picture shows: nothing to pan
    canvas.set_zoom(1.0, QPointF(centre))
    before = canvas.target().topLeft()
    drag(canvas, [centre, centre + QPoint(30, 0), centre + QPoint(60, 40)], button=middle)
    assert canvas.target().topLeft() - before == QPointF(60, 40)
    QTest.keyPress(canvas, Qt.Key.Key_Space)
    drag(canvas, [centre, centre - QPoint(60, 40)])  # Space + left button: pans too
    QTest.keyRelease(canvas, Qt.Key.Key_Space)
    assert canvas.target().topLeft() == before
    assert canvas.mask.is_empty() and not canvas.mask.can_undo()
    drag(canvas, [centre, centre + QPoint(10, 0)])  # Space up: the left button paints
    assert not canvas.mask.is_empty()
    drag(canvas, [centre, centre + QPoint(-100_000, 0)], button=middle)
    assert canvas.target().right() == canvas.width()  # stops at the picture's edge
    wheel(canvas, centre, 1, NONE)  # the plain wheel scrolls, zoomed in
    assert canvas.target().top() == before.y() + 60 and canvas.current_zoom() == 1.0


def test_a_picture_gets_the_room_at_the_default_window_size(qtbot, window, tmp_path) -> None:
    canvas = load(qtbot, window, photo(tmp_path))  # the window is 1280 x 760 here
    qtbot.waitUntil(lambda: canvas.target().width() >= 400)  # was 188 px wide
    assert window.prompt.height() < window.settings_panel.height() / 2  # a few lines
    assert all(tile.isVisible() for tile in window.tiles) and window.generate_button.isVisible()
    assert not window.message.isVisible()  # an empty status line takes no room
    window.input_panel.clear_picture()
    qtbot.waitUntil(lambda: window.prompt.height() > window.settings_panel.height() / 2)
