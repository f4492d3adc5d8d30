"""The minimal prompt canvas drives the real engine through the Qt bridge."""

from __future__ import annotations

import os
import sys
import threading

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage

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
    window.close()  # as the app does: the window goes before the core
    core.close()


def test_ctrl_enter_generates_and_shows_the_results(qtbot, window) -> None:
    qtbot.keyClicks(window.prompt, "two blue squares")
    qtbot.keyClick(window.prompt, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(
        lambda: all(t.pixmap() and not t.pixmap().isNull() for t in window.tiles), timeout=10_000
    )
    assert window.progress.bar.value() == window.progress.bar.maximum()
    assert window.core.history.count() == 4
    assert "seed" in window.tiles[0].toolTip()


def test_a_click_on_generate_generates(qtbot, window) -> None:
    """The button as a user clicks it: its clicked(bool) must not reach generate's `image`."""
    window.prompt.setPlainText("two blue squares")
    qtbot.mouseClick(window.generate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.core.history.count() == 4, timeout=10_000)
    assert "went wrong" not in window.message.text()


def test_errors_are_shown_not_raised(qtbot, window) -> None:
    window.generate()  # empty prompt
    assert "prompt is empty" in window.message.text()
    window.prompt.setPlainText("a circle")
    window.settings_panel.width_box.setValue(12)  # not a multiple of 8 for the fake backend
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


def test_settings_follow_the_backend_and_go_into_the_request(qtbot, window) -> None:
    panel = window.settings_panel
    qtbot.waitUntil(lambda: panel.steps.maximum() == 100)  # the fake backend's capabilities
    assert panel.width_box.maximum() == 256 and panel.count.maximum() == 16
    panel.negative.setText("blurry")
    panel.steps.setValue(7)
    panel.seed.setText("1234")
    panel.seed_lock.setChecked(True)
    window.prompt.setPlainText("a circle")
    window.generate()
    qtbot.waitUntil(lambda: window.core.history.count() == 4, timeout=10_000)
    request = window.core.history.list()[0].request
    assert (request.negative_prompt, request.steps, request.backend) == ("blurry", 7, "fake")
    assert (request.model, request.options) == ("tiny", {"sampler": "fake"})
    assert panel.model.currentText() == "Tiny fake" and panel.sampler.isEnabled()
    assert window.core.engine.job(window.job_id).request.seed == 1234
    assert window.core.settings.steps == 7  # remembered for the next session
    panel.seed_lock.setChecked(False)
    fields = panel.request_fields()
    assert fields["seed"] != 1234 and panel.seed.text() == str(fields["seed"])


def test_a_distilled_model_shows_what_it_wants(qtbot, window) -> None:
    from studio.core.backend import ModelInfo

    panel = window.settings_panel
    qtbot.waitUntil(lambda: panel.model.count() > 0)
    assert panel.model_hint.isHidden()
    models = [ModelInfo("plain", "plain"), ModelInfo("turbo", "turbo", description="1-4 steps")]
    panel._apply_capabilities(panel.backend_id(), None, models)
    panel.model.setCurrentIndex(1)
    assert not panel.model_hint.isHidden() and panel.model_hint.text() == "Tip: 1-4 steps."
    assert "1-4 steps" in panel.model.itemData(1, Qt.ItemDataRole.ToolTipRole)
    panel.model.setCurrentIndex(0)
    assert panel.model_hint.isHidden()


def test_the_viewer_shows_an_image_and_reuses_or_varies_it(qtbot, window) -> None:
    window.prompt.setPlainText("three yellow hearts")
    window.settings_panel.steps.setValue(9)
    window.generate()
    qtbot.waitUntil(lambda: window.gallery.model.total() == 4, timeout=10_000)
    window.prompt.clear()
    window.settings_panel.steps.setValue(3)
    qtbot.waitUntil(lambda: window.gallery.model.rowCount() == 4)
    window.gallery.view.activated.emit(window.gallery.model.index(0))
    viewer = window.viewer
    assert window.tabs.currentWidget() is viewer
    entry = viewer.entry
    assert not viewer.view.item.pixmap().isNull()
    assert "three yellow hearts" in viewer.details.toPlainText()
    assert f"Seed: {entry.request.seed}" in viewer.details.toPlainText()
    viewer.actions_by_name["actual"].trigger()
    assert viewer.view.zoom() == 1.0
    viewer.actions_by_name["zoom_in"].trigger()
    assert viewer.view.zoom() > 1.0
    viewer.actions_by_name["copy"].trigger()
    copied = QGuiApplication.clipboard().image()
    assert copied.size() == QImage(str(entry.path)).size() and not copied.isNull()
    viewer.actions_by_name["reuse"].trigger()
    assert window.tabs.currentIndex() == 0
    assert window.prompt.toPlainText() == "three yellow hearts"
    assert window.settings_panel.steps.value() == 9 and window.settings_panel.seed_lock.isChecked()
    window.open_in_viewer(entry)
    viewer.actions_by_name["vary"].trigger()
    qtbot.waitUntil(lambda: window.core.history.count() == 8, timeout=10_000)
    newest = window.core.history.list()[0]
    assert newest.request.prompt == "three yellow hearts" and newest.request.steps == 9
    assert window.core.engine.job(window.job_id).request.seed != entry.request.seed
    assert newest.request.image.digest == entry.digest  # the image itself as input
    window.open_in_viewer(newest)
    assert f"Made from: #{entry.id}" in viewer.details.toPlainText()
    window.open_in_viewer(entry)
    assert "Made from it: #" in viewer.details.toPlainText()


def test_two_jobs_queue_up_and_a_waiting_one_can_be_cancelled(qtbot, window) -> None:
    import fake_backend

    fake_backend.GATE = threading.Event()
    fake_backend.STEP_STARTED.clear()
    window.prompt.setPlainText("a circle")
    window.generate()
    first = window.job_id
    assert fake_backend.STEP_STARTED.wait(10)
    window.prompt.setPlainText("a square")
    window.generate()
    window.prompt.setPlainText("a star")
    window.generate()
    qtbot.waitUntil(lambda: len(window.queue.job_ids()) == 3)
    assert window.job_id == first  # the canvas stays on the running job
    running, square, _star = window.queue.job_ids()
    assert running == first
    window.queue.jobs.item(2).setSelected(True)
    window.queue.cancel_selected()  # the star, still waiting: dropped at once
    qtbot.waitUntil(lambda: window.queue.job_ids() == [first, square])
    fake_backend.GATE.set()
    qtbot.waitUntil(lambda: window.core.history.count() == 8, timeout=10_000)
    assert window.job_id == square  # the canvas followed the queue
    assert {e.request.prompt for e in window.core.history.list()} == {"a circle", "a square"}
    qtbot.waitUntil(lambda: window.queue.job_ids() == [])


def test_unknown_words_are_marked_and_named(qtbot, window) -> None:
    qtbot.keyClicks(window.prompt, "a zzyzx circle")  # the fake backend knows no "zzyzx"
    qtbot.waitUntil(lambda: "zzyzx" in window.unknown_label.text(), timeout=5_000)
    assert window.prompt.unknown.words == {"zzyzx"}
    window.prompt.setPlainText("a circle")
    qtbot.waitUntil(lambda: window.unknown_label.text() == "", timeout=5_000)


def test_text_past_the_models_limit_is_marked_and_named(qtbot, window) -> None:
    from PySide6.QtGui import QTextCharFormat

    first_line = "😀 two zzz squares\n"  # an emoji: two positions in Qt, one character here
    prompt = first_line + "a circle " * 30  # 66 words: the fake model reads 50
    window.prompt.setPlainText(prompt)
    qtbot.waitUntil(lambda: "reads only the first 50 words" in window.unknown_label.text())
    assert "Not known to this model (ignored): zzz" in window.unknown_label.text()
    assert "the rest is ignored, from “a circle a circle" in window.unknown_label.text()
    dotted = QTextCharFormat.UnderlineStyle.DotLine

    def marked(block_number: int) -> list[tuple[int, int]]:
        block = window.prompt.document().findBlockByNumber(block_number)
        ranges = block.layout().formats()
        return [(r.start, r.length) for r in ranges if r.format.underlineStyle() == dotted]

    at = len(first_line) + len("a circle " * 23)  # the 51st word, counted from the first line
    second_line = window.prompt.document().findBlockByNumber(1)
    start = at + 1 - second_line.position()  # + 1: the emoji's second position
    assert marked(0) == [] and marked(1) == [(start, second_line.length() - 1 - start)]
    window.prompt.setPlainText("a circle")
    qtbot.waitUntil(lambda: window.unknown_label.text() == "")
    assert window.prompt.unknown.cut is None and marked(0) == []


def test_recent_prompts_and_a_dropped_text_file(qtbot, window, tmp_path) -> None:
    from PySide6.QtCore import QMimeData, QUrl

    window.prompt.remember("first prompt")
    window.prompt.remember("second prompt")
    window.prompt.setPlainText("new")
    qtbot.keyClick(window.prompt, Qt.Key.Key_Up, Qt.KeyboardModifier.ControlModifier)
    assert window.prompt.toPlainText() == "second prompt"
    qtbot.keyClick(window.prompt, Qt.Key.Key_Up, Qt.KeyboardModifier.ControlModifier)
    assert window.prompt.toPlainText() == "first prompt"
    text = tmp_path / "idea.txt"
    text.write_text("  a pink heart above a star\n", encoding="utf-8")
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(text))])
    assert window.prompt.canInsertFromMimeData(data)
    window.prompt.insertFromMimeData(data)
    assert window.prompt.toPlainText() == "a pink heart above a star"


def test_a_dropped_image_gives_back_its_prompt_and_settings(qtbot, window, tmp_path) -> None:
    from PIL import Image, PngImagePlugin
    from PySide6.QtCore import QMimeData, QUrl

    from studio.ui.main_window import _dropped_image

    info = PngImagePlugin.PngInfo()
    info.add_text(
        "parameters",
        "a red fox in the snow\nNegative prompt: blurry\n"
        "Steps: 12, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 64x64",
    )
    theirs = tmp_path / "theirs.png"
    Image.new("RGB", (64, 64)).save(theirs, pnginfo=info)
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(theirs))])
    assert _dropped_image(data) == theirs
    window.read_settings_from(theirs)
    qtbot.waitUntil(lambda: "Settings read" in window.message.text(), timeout=5_000)
    panel = window.settings_panel
    assert window.prompt.toPlainText() == "a red fox in the snow"
    assert (panel.negative.text(), panel.seed.text(), panel.steps.value()) == ("blurry", "42", 12)
    assert panel.backend_id() == "fake"  # another tool's file: the chosen backend stays

    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)
    window.read_settings_from(plain)
    qtbot.waitUntil(lambda: "No generation settings" in window.message.text(), timeout=5_000)
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"this is not an image at all")
    window.read_settings_from(fake)
    qtbot.waitUntil(lambda: "Cannot read fake.png" in window.message.text(), timeout=5_000)
    assert window.prompt.toPlainText() == "a red fox in the snow"  # nothing lost


def test_a_dropped_studio_image_gives_back_its_exact_request(qtbot, window) -> None:
    from PIL import Image

    from studio.core.metadata import ImageMetadata
    from studio.core.request import GenerationRequest

    request = GenerationRequest(
        "two blue squares",
        negative_prompt="red",
        seed=7,
        steps=5,
        guidance=3.5,
        count=2,
        candidates=8,
        backend="fake",
    )
    (entry,) = window.core.history.save([(Image.new("RGB", (16, 16)), ImageMetadata(request))], "j")
    window.read_settings_from(entry.path)
    qtbot.waitUntil(lambda: "Settings read" in window.message.text(), timeout=5_000)
    fields = window.settings_panel.request_fields()
    assert window.prompt.toPlainText() == "two blue squares"
    assert {
        k: fields[k]
        for k in ("negative_prompt", "seed", "steps", "guidance", "count", "candidates")
    } == {
        "negative_prompt": "red",
        "seed": 7,
        "steps": 5,
        "guidance": 3.5,
        "count": 2,
        "candidates": 8,
    }


def test_the_window_layout_and_the_status_line(qtbot, window) -> None:
    from PySide6.QtWidgets import QDockWidget

    assert "fake" in window.summary.text() and "0 waiting" in window.summary.text()
    window.findChild(QDockWidget, "queue").hide()
    window.close()
    assert window.core.settings.window_geometry and window.core.settings.window_state
    again = MainWindow(window.core)
    qtbot.addWidget(again)
    again.show()
    assert again.findChild(QDockWidget, "queue").isHidden()
    assert not again.findChild(QDockWidget, "history").isHidden()


def test_the_theme_can_be_dark_light_or_the_systems(window) -> None:
    from PySide6.QtWidgets import QApplication

    def lightness() -> int:
        return QApplication.palette().window().color().lightness()

    window.set_theme("dark")  # offscreen cannot switch: our own dark palette does
    assert lightness() < 100
    window.set_theme("light")
    assert lightness() > 150
    window.set_theme("system")
    assert window.core.settings.theme == "system" and lightness() > 150


def test_a_broken_backend_shows_its_error_and_the_app_keeps_working(
    qtbot, install_plugins, tmp_path
) -> None:
    install_plugins()  # fake, and "broken", which raises on import
    core = Core.open(tmp_path / "home2")
    core.settings.backend, core.settings.width, core.settings.height = "broken", 16, 16
    window = MainWindow(core)
    qtbot.addWidget(window)
    try:
        assert window.settings_panel.backend_id() == "broken"
        window.prompt.setPlainText("a circle")
        window.generate()
        qtbot.waitUntil(lambda: "Generation failed" in window.message.text(), timeout=10_000)
        assert "broken" in window.message.text()
        window.settings_panel.backend.setCurrentIndex(
            window.settings_panel.backend.findData("fake")
        )
        window.generate()
        qtbot.waitUntil(lambda: core.history.count() == 4, timeout=10_000)
    finally:
        window.close()
        core.close()


def test_an_engine_signal_queued_after_the_app_closed_is_ignored(
    qtbot, install_plugins, tmp_path
) -> None:
    from PySide6.QtCore import QObject, Slot

    class Probe(QObject):  # on the GUI thread, connected last: its call comes last
        def __init__(self) -> None:
            super().__init__()
            self.calls: list[tuple[object, object]] = []

        @Slot(object, object)
        def record(self, queued: object, running: object) -> None:
            self.calls.append((queued, running))

    install_plugins()
    core = Core.open(tmp_path / "home3")
    window = MainWindow(core)
    qtbot.addWidget(window)
    probe = Probe()
    window.bridge.queue_changed.connect(probe.record)
    window.close()
    summary = window.summary.text()
    last = threading.Thread(target=window.bridge.queue_changed.emit, args=([], None))
    with qtbot.captureExceptions() as exceptions:
        last.start()  # from another thread, as the engine's: queued for the GUI thread
        last.join()
        core.close()
        qtbot.waitUntil(lambda: probe.calls == [([], None)])  # delivered, the window's first
    assert exceptions == []  # the closed window's slots ran without touching the closed core
    assert window.summary.text() == summary


def test_a_candidate_opens_in_the_viewer_and_drags_out_as_a_file(qtbot, window) -> None:
    window.prompt.setPlainText("two blue squares")
    window.generate()
    tile = window.tiles[0]
    qtbot.waitUntil(lambda: tile.entry is not None, timeout=10_000)
    assert [u.toLocalFile() for u in tile.drag_data().urls()] == [str(tile.entry.path)]
    qtbot.mouseDClick(tile, Qt.MouseButton.LeftButton)
    assert window.tabs.currentWidget() is window.viewer and window.viewer.entry == tile.entry


def test_the_app_generates_with_the_built_in_model_in_a_worker_process(qtbot, tmp_path) -> None:
    """As the app runs: the settings' executor (a worker process) and the default backend."""
    core = Core.open(tmp_path / "home", executor=None)
    window = MainWindow(core)
    qtbot.addWidget(window)
    window.show()
    try:
        window.prompt.setPlainText("two red circles")
        window.generate()
        qtbot.waitUntil(lambda: core.history.count() == 4, timeout=60_000)
        qtbot.waitUntil(lambda: all(t.pixmap() and not t.pixmap().isNull() for t in window.tiles))
        qtbot.waitUntil(lambda: bool(window.device))  # the results shown, not just previews
        assert core.engine.executor.pid not in (None, os.getpid())
        here = core.registry.get(core.default_backend())  # this process's, never loaded
        assert here.device() == "cpu"
        here.load("")  # as the worker did: the device (and provider) this machine gives it
        try:
            assert window.device == here.device()  # reported from the worker
        finally:
            here.unload()
        if sys.platform.startswith("linux"):  # the worker's memory is counted too
            assert "MB (generation)" in window.summary.text()
    finally:
        window.close()
        core.close()
