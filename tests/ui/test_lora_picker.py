"""The LoRA picker lists the library's LoRAs for the model's family, writes the tag into
the prompt and follows edits of the prompt's text."""

from __future__ import annotations

import pytest

from studio.core.app import Core
from studio.core.backend import Capabilities
from studio.ui.lora_picker import set_lora
from studio.ui.main_window import MainWindow
from studio.ui.model_context import ModelContext


@pytest.fixture
def window(qtbot, install_plugins, tmp_path):
    install_plugins({"fake": "addon_backend:FakeWithAddons"})
    core = Core.open(tmp_path / "home")
    core.settings.backend, core.settings.width, core.settings.height = "fake", 16, 16
    window = MainWindow(core)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: bool(window.lora_picker.boxes), timeout=10_000)
    yield window
    window.close()
    core.close()


def test_set_lora_adds_rewrites_and_removes_the_tag() -> None:
    assert set_lora("a cat", "ink", 0.8) == "a cat <lora:ink:0.8>"
    assert set_lora("a <lora:INK:1> cat", "ink", 0.5) == "a <lora:ink:0.5> cat"
    assert set_lora("a cat <lora:ink:0.5>", "ink", None) == "a cat"
    assert set_lora("", "ink", 1.0) == "<lora:ink:1>"


def test_the_family_s_loras_are_offered(window) -> None:
    picker = window.lora_picker
    assert set(picker.boxes) == {"ink", "glow"}  # SD 1.x and unknown; not the SDXL one
    assert window.prompt.isVisible() and window.generate_button.text() == "Generate"


def test_ticking_inserts_the_tag_and_text_edits_move_the_picker(qtbot, window) -> None:
    picker = window.lora_picker
    window.prompt.setPlainText("a lighthouse")
    box, weight = picker.boxes["ink"]
    weight.setValue(0.7)
    assert window.prompt.toPlainText() == "a lighthouse"  # not ticked: nothing written
    box.setChecked(True)
    assert window.prompt.toPlainText() == "a lighthouse <lora:ink:0.7>"
    weight.setValue(0.5)
    assert window.prompt.toPlainText() == "a lighthouse <lora:ink:0.5>"
    window.prompt.setPlainText("a lighthouse <lora:ink:0.25>, <lora:glow:1.5>")
    assert box.isChecked() and weight.value() == 0.25
    assert picker.boxes["glow"][0].isChecked() and picker.boxes["glow"][1].value() == 1.5
    window.prompt.setPlainText("a lighthouse")
    assert not box.isChecked() and not picker.boxes["glow"][0].isChecked()
    box.setChecked(True)
    window.prompt.setPlainText(window.prompt.toPlainText())  # the picker writes nothing back
    assert window.prompt.toPlainText() == "a lighthouse <lora:ink:0.25>"
    window.generate()
    qtbot.waitUntil(lambda: window.core.history.count() > 0, timeout=10_000)
    assert "<lora:ink:0.25>" in window.core.history.list()[0].request.prompt


def test_a_backend_without_loras_says_so(qtbot, window) -> None:
    picker = window.lora_picker
    picker.set_context(ModelContext("x", Capabilities(loras=False)))
    assert not picker.boxes and "takes none" in picker.reason.text()
    assert not picker.scroll.isVisible()
    picker.set_context(ModelContext("x", Capabilities(loras=True)))
    assert "none for this model in the model library" in picker.reason.text()
