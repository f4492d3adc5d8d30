"""How a picture gets onto the canvas (drop, paste, "Use as input"), what Generate sends
with it, and the controls a backend that takes no picture hides."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication, QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from studio.core.app import Core
from studio.core.backend import Capabilities
from studio.ui.canvas import Tool
from studio.ui.generation_settings import picture_size
from studio.ui.main_window import MainWindow
from studio.ui.picture_source import picture_in
from studio.ui.strength import meaning

LEFT, NONE = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier


def make_window(qtbot, core: Core) -> MainWindow:
    window = MainWindow(core)
    qtbot.addWidget(window)
    window.resize(1280, 760)
    window.show()
    qtbot.waitUntil(lambda: window.settings_panel.model.count() > 0)  # capabilities read
    return window


@pytest.fixture
def window(qtbot, install_plugins, tmp_path):
    install_plugins({"fake": "fake_backend:FakeBackend"})
    core = Core.open(tmp_path / "home")
    core.settings.backend, core.settings.width, core.settings.height = "fake", 16, 16
    window = make_window(qtbot, core)
    yield window
    window.close()
    core.close()


def picture_file(tmp_path: Path, size=(100, 60), name="room.png") -> Path:
    path = tmp_path / name
    Image.new("RGB", size, (200, 180, 150)).save(path)
    return path


def loaded(qtbot, window: MainWindow) -> None:
    qtbot.waitUntil(lambda: window.input_panel.picture is not None, timeout=10_000)


def generated(qtbot, window: MainWindow):
    count = window.core.history.count()
    window.generate()
    qtbot.waitUntil(lambda: window.core.history.count() > count, timeout=10_000)
    return window.core.engine.job(window.job_id).request


def test_a_dropped_photo_becomes_the_input(qtbot, window, tmp_path) -> None:
    path = picture_file(tmp_path)
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(path))])
    panel = window.input_panel
    assert not panel.editor.isVisible() and panel.drop_zone.isVisible()
    copy = Qt.DropAction.CopyAction
    enter = QDragEnterEvent(QPoint(10, 10), copy, data, LEFT, NONE)
    QApplication.sendEvent(panel, enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(10, 10), copy, data, LEFT, NONE)
    QApplication.sendEvent(panel, drop)
    assert drop.isAccepted()
    loaded(qtbot, window)
    assert panel.title.text() == "room.png   100 \u00d7 60"
    assert panel.editor.isVisible() and not panel.drop_zone.isVisible()
    not_a_picture = tmp_path / "notes.txt"
    not_a_picture.write_text("hello")
    data.setUrls([QUrl.fromLocalFile(str(not_a_picture))])
    enter = QDragEnterEvent(QPoint(10, 10), copy, data, LEFT, NONE)
    QApplication.sendEvent(panel, enter)
    assert not enter.isAccepted()


def test_a_broken_file_is_refused_with_the_reason(qtbot, window, tmp_path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a picture")
    window.input_panel.load(broken)
    qtbot.waitUntil(lambda: "Cannot use broken.png" in window.message.text(), timeout=10_000)
    assert window.input_panel.picture is None


def test_ctrl_v_pastes_a_picture(qtbot, window) -> None:
    image = QImage(40, 30, QImage.Format.Format_RGB32)
    image.fill(Qt.GlobalColor.darkGreen)
    QGuiApplication.clipboard().setImage(image)
    window.tabs.setCurrentWidget(window.viewer)
    window.gallery.view.setFocus()
    QTest.keyClick(window.gallery.view, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    loaded(qtbot, window)
    assert window.tabs.currentIndex() == 0
    assert "40 \u00d7 30" in window.input_panel.title.text()
    QGuiApplication.clipboard().setText("just words")
    window.input_panel.clear_picture()
    window.paste_picture()
    assert "no picture" in window.message.text() and window.input_panel.picture is None


def test_pasted_png_bytes_are_decoded_off_the_gui_thread(qtbot, window, tmp_path) -> None:
    # Another program's pixels come as encoded PNG: taken as bytes, not decoded here.
    data = QMimeData()
    data.setData("image/png", picture_file(tmp_path, (50, 20)).read_bytes())
    assert isinstance(picture_in(data), bytes)
    assert window.input_panel.take_mime(data)
    loaded(qtbot, window)
    panel = window.input_panel
    assert "50 \u00d7 20" in panel.title.text() and panel.canvas.mask.size().width() == 50
    data.setData("image/png", b"not a png")
    assert window.input_panel.take_mime(data)
    refused = lambda: "Cannot use the pasted picture" in window.message.text()  # noqa: E731
    qtbot.waitUntil(refused, timeout=10_000)


def test_use_as_input_from_the_gallery_the_viewer_and_a_tile(qtbot, window) -> None:
    window.prompt.setPlainText("two blue squares")
    generated(qtbot, window)
    qtbot.waitUntil(lambda: window.gallery.model.rowCount() == 4)
    panel = window.input_panel
    entry = window.gallery.model.entry(1)
    window.gallery.view.setCurrentIndex(window.gallery.model.index(1))
    assert window.gallery.use_input_action in window.gallery.view.actions()  # context menu
    window.gallery.use_input_action.trigger()
    loaded(qtbot, window)
    assert panel.picture.name == entry.path.name
    assert panel.picture.stored.digest == entry.digest

    panel.clear_picture()
    other = window.gallery.model.entry(2)
    window.open_in_viewer(other)
    action = window.viewer.actions_by_name["use_input"]
    toolbar = window.viewer.toolbar.actions()
    assert toolbar.index(action) == toolbar.index(window.viewer.actions_by_name["vary"]) + 1
    action.trigger()
    loaded(qtbot, window)
    assert window.tabs.currentIndex() == 0 and panel.picture.stored.digest == other.digest

    panel.clear_picture()
    tile = window.tiles[0]
    qtbot.waitUntil(lambda: tile.entry is not None)
    tile.use_input_action.trigger()
    loaded(qtbot, window)
    assert panel.picture.stored.digest == tile.entry.digest


def test_generate_sends_the_picture_the_mask_and_the_strength(qtbot, window, tmp_path) -> None:
    settings, panel = window.settings_panel, window.input_panel
    path = picture_file(tmp_path)
    window.input_panel.load(path)
    loaded(qtbot, window)
    assert panel.strength.isVisible() and panel.mask_tools.isVisible()
    assert panel.strength.value() == 0.5  # the fake backend's default
    # No mask: the picture's size snapped to the backend's multiple of 8, as the CLI does.
    assert (settings.width_box.value(), settings.height_box.value()) == (96, 64)
    panel.strength.slider.setValue(80)
    assert panel.strength.words.text() == meaning(0.8) != meaning(0.1)
    window.prompt.setPlainText("a cosy room")
    request = generated(qtbot, window)
    assert request.image.digest == window.core.add_input(path).digest
    assert request.mask is None and request.strength == 0.8
    assert request.size == (96, 64)

    canvas = panel.canvas
    panel.set_tool(Tool.RECT)
    t = canvas.target()
    corner = QPoint(round(t.center().x()), round(t.bottom() - 2))
    QTest.mousePress(canvas, LEFT, NONE, QPoint(round(t.x() + 2), round(t.center().y())))
    QTest.mouseRelease(canvas, LEFT, NONE, corner)
    assert panel.masked()
    assert "repaints the masked part fully" in panel.reason.text()  # fake: not under masks
    request = generated(qtbot, window)
    mask = request.mask.open()
    assert mask.mode == "L" and mask.size == (100, 60)  # the picture's own size
    assert mask.getpixel((20, 50)) == 255 and mask.getpixel((80, 10)) == 0
    assert request.strength == 0.0  # this backend takes none with a mask
    result = window.core.history.list()[0]
    assert result.request.mask.digest == request.mask.digest

    panel.clear_picture()
    assert (settings.width_box.value(), settings.height_box.value()) == (16, 16)  # as before
    request = generated(qtbot, window)
    assert request.image is None and request.mask is None


def test_the_size_follows_the_picture_as_the_cli_does() -> None:
    c = Capabilities(min_size=64, max_size=1024, size_multiple=8, max_picture_size=2048)
    assert picture_size(c, (4000, 3000), masked=True) == (2048, 1536)
    assert picture_size(c, (1001, 601), masked=True) == (1001, 601)  # exact with a mask
    assert picture_size(c, (1001, 601), masked=False) == (1000, 600)  # else snapped
    plain = Capabilities(min_size=8, max_size=256, size_multiple=8)
    assert picture_size(plain, (100, 60), masked=True) == (96, 64)  # cannot take 100 x 60
    assert picture_size(plain, (4000, 3000), masked=False) == (256, 192)
    assert picture_size(Capabilities(fixed_sizes=((64, 64),)), (100, 60), True) is None


def test_a_text_only_backend_hides_the_picture_controls(qtbot, install_plugins, tmp_path) -> None:
    install_plugins({"fake-text": "fake_backend:FakeTextOnly"})
    core = Core.open(tmp_path / "home2")
    core.settings.backend, core.settings.width, core.settings.height = "fake-text", 16, 16
    window = make_window(qtbot, core)
    try:
        window.input_panel.load(picture_file(tmp_path))
        loaded(qtbot, window)
        panel = window.input_panel
        assert panel.canvas.isVisible()  # the picture is still shown
        assert not panel.mask_tools.isVisible() and not panel.strength.isVisible()
        assert "makes images from text only" in panel.reason.text()
        settings = window.settings_panel
        assert (settings.width_box.value(), settings.height_box.value()) == (16, 16)
        window.prompt.setPlainText("a cosy room")
        request = generated(qtbot, window)
        assert request.image is None and request.strength == 0
    finally:
        window.close()
        core.close()


def test_vary_is_one_action_on_any_image_the_gallery_or_a_tile(qtbot, window) -> None:
    window.prompt.setPlainText("two blue squares")
    generated(qtbot, window)
    qtbot.waitUntil(lambda: window.gallery.model.rowCount() == 4)
    entry = window.gallery.model.entry(2)
    window.gallery.view.setCurrentIndex(window.gallery.model.index(2))
    assert window.gallery.vary_action in window.gallery.view.actions()  # context menu
    window.gallery.vary_action.trigger()
    qtbot.waitUntil(lambda: window.core.history.count() == 8, timeout=10_000)
    varied = window.core.engine.job(window.job_id).request
    assert varied.image is not None and varied.image.digest == entry.digest
    assert varied.prompt == entry.request.prompt and varied.seed != entry.request.seed
    tile = window.tiles[0]
    qtbot.waitUntil(lambda: tile.entry is not None)
    source = tile.entry
    tile.vary_action.trigger()
    qtbot.waitUntil(lambda: window.core.history.count() == 12, timeout=10_000)
    assert window.core.engine.job(window.job_id).request.image.digest == source.digest
