"""The aspect presets beside the size fields set a snapped size for the chosen model."""

from __future__ import annotations

import pytest

from studio.core.app import Core
from studio.core.backend import Capabilities, ModelInfo
from studio.ui.aspect import AspectPresets
from studio.ui.main_window import MainWindow


@pytest.fixture
def window(qtbot, install_plugins, tmp_path):
    install_plugins({"fake": "fake_backend:FakeBackend"})
    core = Core.open(tmp_path / "home")
    core.settings.backend, core.settings.width, core.settings.height = "fake", 16, 16
    window = MainWindow(core)
    qtbot.addWidget(window)
    window.show()
    yield window
    window.close()
    core.close()


def test_a_preset_sets_the_size_boxes_within_the_backends_range(qtbot, window) -> None:
    panel = window.settings_panel
    qtbot.waitUntil(lambda: window.model_context.context is not None)
    panel.aspect.choose("16:9")
    assert (panel.width_box.value(), panel.height_box.value()) == (256, 144)  # fake: up to 256
    texts = [panel.aspect.itemText(i) for i in range(panel.aspect.count())]
    assert "16:9   256 \u00d7 144" in texts  # the pixel size shown


def test_presets_follow_the_models_native_size_and_the_input(qtbot) -> None:
    box = AspectPresets()
    qtbot.addWidget(box)
    caps = Capabilities(min_size=64, max_size=2048, size_multiple=8)
    box.set_model(caps, ModelInfo("m", "m", architecture="SDXL", native_size=1024))
    assert box.sizes()["1:1"] == (1024, 1024)
    assert box.sizes()["3:4"][0] % 8 == 0
    assert "as the input" not in box.sizes()
    box.set_input((4000, 3000))
    box.set_model(caps, ModelInfo("m", "m", native_size=512))
    chosen = []
    box.size_chosen.connect(lambda w, h: chosen.append((w, h)))
    box.choose("as the input")
    assert chosen == [(592, 440)]
    box.set_model(Capabilities(fixed_sizes=((64, 64),)), None)  # the built-in model
    assert not box.isEnabled()
