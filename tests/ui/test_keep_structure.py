"""Keep the structure: with a ControlNet for the model's family the switch sends a
control of the input picture and shows its map; without one it says what to add."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from studio.core.app import Core
from studio.core.backend import Capabilities, ModelInfo
from studio.ui.main_window import MainWindow
from studio.ui.model_context import ModelContext


@pytest.fixture
def window(qtbot, install_plugins, tmp_path):
    install_plugins({"fake": "addon_backend:FakeWithAddons"})
    core = Core.open(tmp_path / "home")
    core.settings.backend, core.settings.width, core.settings.height = "fake", 16, 16
    window = MainWindow(core)
    qtbot.addWidget(window)
    window.resize(1280, 760)
    window.show()
    qtbot.waitUntil(lambda: window.model_context.context is not None, timeout=10_000)
    yield window
    window.close()
    core.close()


def line_drawing(tmp_path: Path) -> Path:
    path = tmp_path / "plan.png"
    image = Image.new("RGB", (64, 48), "white")
    ImageDraw.Draw(image).rectangle((8, 8, 40, 30), outline="black", width=2)
    image.save(path)
    return path


def test_the_switch_sends_a_control_of_the_picture(qtbot, window, tmp_path) -> None:
    structure = window.structure
    assert not structure.isVisible()  # no picture yet
    window.input_panel.load(line_drawing(tmp_path))
    qtbot.waitUntil(lambda: structure.isVisible(), timeout=10_000)
    assert structure.switch.isEnabled() and not structure.reason.text()
    assert structure.preprocess.currentText() == "canny"  # the SD plugin's, by default
    structure.switch.setChecked(True)
    structure.preprocess.setCurrentText("invert")
    qtbot.waitUntil(lambda: not structure.map_view.pixmap().isNull(), timeout=10_000)
    shown = structure.map_view.pixmap().toImage()  # the map beside the switch: inverted
    assert shown.pixelColor(shown.width() // 2, shown.height() // 2).lightness() < 20
    structure.advanced.setChecked(True)
    assert structure.advanced_box.isVisible()
    structure.weight.setValue(0.6)
    structure.end.setValue(0.8)
    window.prompt.setPlainText("a small house")
    window.generate()
    job = window.core.engine.job(window.job_id)
    qtbot.waitUntil(lambda: window.core.engine.job(job.id).state.finished, timeout=10_000)
    assert window.core.engine.job(job.id).state.value == "done"
    (control,) = window.core.engine.job(job.id).request.controls
    assert control.model == "/lib/edges.safetensors" and control.preprocess == "invert"
    assert (control.weight, control.start, control.end) == (0.6, 0.0, 0.8)
    assert control.image == window.input_panel.picture.stored
    (recorded,) = window.core.history.list()[0].request.controls
    assert recorded.map is not None  # made by the engine before the job ran, and kept
    structure.switch.setChecked(False)
    assert structure.request_fields() == {}


def test_without_a_controlnet_the_switch_says_what_to_add(qtbot, window, tmp_path) -> None:
    structure = window.structure
    window.input_panel.load(line_drawing(tmp_path))
    qtbot.waitUntil(lambda: structure.isVisible(), timeout=10_000)
    sdxl = ModelInfo("big", "big", architecture="SDXL")
    structure.set_context(
        ModelContext("fake", Capabilities(controls=1), sdxl, window.model_context.context.addons)
    )
    assert not structure.switch.isEnabled() and structure.isVisible()
    assert "add a ControlNet for SDXL to the model library" in structure.reason.text()
    assert "Backends" in structure.reason.text() and "Add model" in structure.reason.text()
    structure.set_context(ModelContext("fake", Capabilities(controls=0), sdxl))
    assert "takes no ControlNet" in structure.reason.text()
    assert structure.request_fields() == {}
