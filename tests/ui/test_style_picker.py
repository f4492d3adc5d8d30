"""The style picker: picking styles changes the final prompt shown and the request sent,
and the images' metadata names the styles."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QPlainTextEdit, QPushButton

from studio.core.app import Core
from studio.core.metadata import read_metadata
from studio.core.styles import Style
from studio.ui.main_window import MainWindow

JAPANDI = "japandi interior, light oak, linen, muted earth tones, low furniture, calm and minimal"


@pytest.fixture
def window(qtbot, install_plugins, tmp_path):
    install_plugins({"fake": "fake_backend:FakeBackend"})
    core = Core.open(tmp_path / "home")
    core.settings.backend, core.settings.width, core.settings.height = "fake", 16, 16
    core.settings.count = core.settings.candidates = 1
    window = MainWindow(core)
    qtbot.addWidget(window)
    window.show()
    yield window
    window.close()
    core.close()


def menu_action(window: MainWindow, group: str, name: str):
    menu = window.style_picker.buttons[group].menu()
    menu.aboutToShow.emit()  # filled as it opens
    return next(a for a in menu.actions() if a.text() == name)


def test_picked_styles_change_the_preview_and_the_request_sent(qtbot, window) -> None:
    picker = window.style_picker
    assert set(picker.buttons) == {"Interior", "Art", "Room"}
    assert not picker.preview.isVisibleTo(window)  # nothing picked: nothing to show
    window.prompt.setPlainText("a sofa")
    window.settings_panel.negative.setText("blur")
    menu_action(window, "Room", "Living room").trigger()
    menu_action(window, "Art", "Watercolour").trigger()
    final = "watercolour painting of a sofa, living room, soft washes, paper texture"
    assert picker.final_prompt.text() == final
    assert picker.final_negative.text() == "blur, photo, 3d render"
    assert picker.preview.isVisibleTo(window)
    assert picker.buttons["Art"].text() == "Art (1)"
    window.prompt.setPlainText("a bed")  # the preview follows the prompt as it is typed
    assert picker.final_prompt.text() == final.replace("sofa", "bed")

    window.generate()
    qtbot.waitUntil(lambda: window.core.history.count() == 1, timeout=10_000)
    (entry,) = window.core.history.list()
    assert entry.request.prompt == final.replace("sofa", "bed")
    assert entry.request.options["styles"] == ["Living room", "Watercolour"]
    parsed = read_metadata(entry.path)
    assert 'Styles: "Living room, Watercolour"' in parsed.raw["parameters"]
    assert parsed.studio.request.options["styles"] == ["Living room", "Watercolour"]
    assert window.prompt.recent[0] == "a bed"  # recent prompts keep what was typed


def test_chips_unpick_and_history_prompts_drop_the_picks(qtbot, window) -> None:
    picker = window.style_picker
    window.prompt.setPlainText("a chair")
    picker.pick(["Japandi", "Ink sketch"])
    assert [s.name for s in picker.picked()] == ["Japandi", "Ink sketch"]
    assert picker.final_prompt.text() == (
        f"ink sketch of a chair, {JAPANDI}, fine pen lines, cross-hatching, white paper"
    )
    chip = picker.chips.itemAt(0).widget()
    chip.click()
    assert [s.name for s in picker.picked()] == ["Ink sketch"]
    window.reuse_prompt("ink sketch of a chair, fine pen lines")  # already styled
    assert picker.picked() == []
    prompt, fields = picker.styled("x", {"negative_prompt": ""})
    assert (prompt, fields) == ("x", {"negative_prompt": ""})


def test_styles_file_edits_are_read_again_and_prompt_stays_first(qtbot, window) -> None:
    picker = window.style_picker
    picker.library.save([Style("Mine", "my words, {prompt}", "", "Personal")])
    picker.reload()
    assert list(picker.buttons) == ["Personal"]
    menu_action(window, "Personal", "Mine").trigger()
    window.prompt.setPlainText("a lamp")
    assert picker.final_prompt.text() == "my words, a lamp"
    files = [a.text() for a in window.menuBar().actions()[0].menu().actions()]
    assert "&Import styles…" in files and "E&xport styles…" in files
    # Scripts find the prompt as the first multi-line box and the "Generate" button.
    shown = [box for box in window.findChildren(QPlainTextEdit) if box.isVisible()]
    assert shown == [window.prompt]
    assert any(b.text() == "Generate" for b in window.findChildren(QPushButton))
