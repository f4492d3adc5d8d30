"""Redesign a room as one flow: a room photo on the canvas, "Redesign room", a room type
and a style, Generate: img2img of the photo held by a ControlNet where one fits (else at
a strength that keeps the layout), four variants, the styles in the prompt. With the fake
backend, and with a tiny random SD model and ControlNet in the model library."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from studio.core.app import Core
from studio.ui.main_window import MainWindow
from studio.ui.redesign import STRENGTH_KEEPING_LAYOUT, STRENGTH_WITH_STRUCTURE, VARIANTS


def room_photo(path: Path, size: tuple[int, int] = (64, 48)) -> Path:
    """Walls, a floor, a window and a sofa, in flat colours."""
    w, h = size
    image = Image.new("RGB", size, (214, 206, 190))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, h * 2 // 3, w, h), fill=(150, 110, 80))  # floor
    draw.rectangle((w // 8, h // 8, w * 3 // 8, h // 2), fill=(170, 210, 240))  # window
    draw.rectangle((w // 2, h // 2, w * 7 // 8, h * 3 // 4), fill=(90, 110, 140))  # sofa
    image.save(path)
    return path


def open_window(qtbot, core: Core) -> MainWindow:
    window = MainWindow(core)
    qtbot.addWidget(window)
    window.resize(1280, 760)
    window.show()
    qtbot.waitUntil(lambda: window.model_context.context is not None, timeout=60_000)
    return window


def redesign(qtbot, window: MainWindow, photo: Path) -> None:
    """Drop the photo on the canvas, press Redesign room, pick a room type and style."""
    window.input_panel.load(photo)
    qtbot.waitUntil(lambda: window.redesign.isVisible(), timeout=10_000)
    window.redesign.button.click()
    assert "pick a room type (Room) and a style (Interior)" in window.redesign.hint.text()
    window.style_picker.pick(["Living room"])
    assert "a style (Interior)" in window.redesign.hint.text()
    window.style_picker.pick(["Japandi"])
    assert "press Generate" in window.redesign.hint.text()


def generated(qtbot, window: MainWindow, timeout: int = 10_000):
    window.generate()
    job_id = window.job_id
    qtbot.waitUntil(lambda: window.core.engine.job(job_id).state.finished, timeout=timeout)
    job = window.core.engine.job(job_id)
    assert job.state.value == "done", job.error
    return job.request


@pytest.fixture
def fake_core(install_plugins, tmp_path):
    def make(spec: str) -> Core:
        install_plugins({"fake": spec})
        core = Core.open(tmp_path / "home")
        core.settings.backend, core.settings.width, core.settings.height = "fake", 16, 16
        core.settings.count = 1
        return core

    return make


def test_with_a_controlnet_it_keeps_the_structure(qtbot, fake_core, tmp_path) -> None:
    core = fake_core("addon_backend:FakeWithAddons")
    window = open_window(qtbot, core)
    try:
        redesign(qtbot, window, room_photo(tmp_path / "room.png"))
        assert window.structure.switch.isChecked()
        assert "Keep structure is on" in window.redesign.hint.text()
        request = generated(qtbot, window)
        (control,) = request.controls
        assert control.model == "/lib/edges.safetensors"
        assert control.image == request.image == window.input_panel.picture.stored
        assert request.strength == pytest.approx(STRENGTH_WITH_STRUCTURE, abs=0.01)
        assert request.count == VARIANTS
        assert request.prompt.startswith("living room, japandi interior")
        assert request.options["styles"] == ["Living room", "Japandi"]
        assert len(core.history.list()) == VARIANTS
    finally:
        window.close()
        core.close()


def test_without_a_controlnet_a_strength_keeps_the_layout(qtbot, fake_core, tmp_path) -> None:
    core = fake_core("fake_backend:FakeBackend")
    window = open_window(qtbot, core)
    try:
        redesign(qtbot, window, room_photo(tmp_path / "room.png"))
        assert not window.structure.switch.isChecked()
        hint = window.redesign.hint.text()
        assert f"strength {STRENGTH_KEEPING_LAYOUT:g} keeps the layout" in hint
        request = generated(qtbot, window)
        assert request.controls == () and request.image is not None
        assert request.strength == pytest.approx(STRENGTH_KEEPING_LAYOUT, abs=0.01)
        assert request.count == VARIANTS
    finally:
        window.close()
        core.close()


def test_a_new_picture_starts_over(qtbot, fake_core, tmp_path) -> None:
    core = fake_core("fake_backend:FakeBackend")
    window = open_window(qtbot, core)
    try:
        redesign(qtbot, window, room_photo(tmp_path / "room.png"))
        window.input_panel.load(room_photo(tmp_path / "other.png", (48, 64)))
        qtbot.waitUntil(lambda: window.input_panel.picture.name == "other.png", timeout=10_000)
        assert window.redesign.button.text() == "Redesign room"
        assert not window.redesign.active and "pick" not in window.redesign.hint.text()
    finally:
        window.close()
        core.close()


@pytest.mark.timeout(120)
def test_a_tiny_sd_model_and_controlnet_get_the_redesign(qtbot, tmp_path) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    from support.random_controlnets import build_random_controlnet, save_controlnet_folder
    from support.random_sd import build_random_sd

    torch.set_num_threads(1)
    home = tmp_path / "home"
    models = home / "data" / "models"
    base = build_random_sd(models / "tiny")
    save_controlnet_folder(build_random_controlnet(base), models / "edges")
    core = Core.open(home)
    s = core.settings
    s.backend, s.model, s.width, s.height, s.steps, s.count = "diffusion", "tiny", 64, 64, 2, 1
    window = open_window(qtbot, core)
    try:
        qtbot.waitUntil(lambda: bool(window.structure.controlnets), timeout=60_000)
        redesign(qtbot, window, room_photo(tmp_path / "room.png", (64, 64)))
        assert window.structure.switch.isChecked()
        request = generated(qtbot, window, timeout=90_000)
        (control,) = request.controls
        assert Path(control.model).name == "edges" and control.preprocess == "canny"
        assert request.image is not None and request.count == VARIANTS
        assert request.strength == pytest.approx(STRENGTH_WITH_STRUCTURE, abs=0.01)
        entries = core.history.list()
        assert len(entries) == VARIANTS
        assert {e.request.image.digest for e in entries} == {request.image.digest}
        assert all(Image.open(e.path).size == (64, 64) for e in entries)
    finally:
        window.close()
        core.close()
