"""Screenshots of the room redesign flow from the real window, with the built-in model:
a drawn room photo on the canvas, Redesign room, a room type and a style, four variants
beside the photo; then the viewer comparing a variant with the photo (the divider).

    .venv/bin/python bench/screenshots_redesign.py [--out docs/screenshots]

Runs in a fresh data folder; the room is drawn here (nothing downloaded).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def draw_room(path: Path, size: tuple[int, int] = (768, 512)) -> Path:
    """A living room in flat shapes: walls, floor, a window with sky, a sofa, a rug, a
    lamp, a plant and a frame, softened a little as a photo would be."""
    w, h = size
    room = Image.new("RGB", size, (222, 214, 198))
    d = ImageDraw.Draw(room)
    d.polygon([(0, 0), (w // 8, h // 10), (w // 8, h * 7 // 10), (0, h)], fill=(200, 190, 172))
    d.rectangle((w // 8, h * 7 // 10, w, h), fill=(150, 108, 74))  # floor
    d.polygon([(0, h), (w // 8, h * 7 // 10), (w // 8, h)], fill=(138, 98, 66))
    for x in range(w // 8, w, w // 12):  # floor boards
        d.line((x, h * 7 // 10, x - w // 30, h), fill=(128, 92, 62), width=2)
    d.rectangle((w // 5, h // 6, w * 2 // 5, h // 2), fill=(245, 245, 240))  # window frame
    d.rectangle((w // 5 + 8, h // 6 + 8, w * 2 // 5 - 8, h // 2 - 8), fill=(150, 200, 240))
    d.line((w * 3 // 10, h // 6, w * 3 // 10, h // 2), fill=(245, 245, 240), width=6)
    d.line((w // 5, h // 3, w * 2 // 5, h // 3), fill=(245, 245, 240), width=6)
    d.rectangle((w * 3 // 5, h // 5, w * 4 // 5, h * 2 // 5), fill=(90, 70, 50))  # frame
    d.rectangle((w * 3 // 5 + 8, h // 5 + 8, w * 4 // 5 - 8, h * 2 // 5 - 8), fill=(210, 150, 90))
    d.ellipse((w * 2 // 5, h * 17 // 20, w * 9 // 10, h * 99 // 100), fill=(180, 60, 60))  # rug
    sofa = (w * 9 // 20, h * 11 // 20, w * 17 // 20, h * 4 // 5)
    d.rounded_rectangle(sofa, radius=18, fill=(70, 96, 130))  # sofa back and seat
    d.rounded_rectangle(
        (sofa[0] - 20, h * 13 // 20, sofa[0] + 30, sofa[3]), radius=12, fill=(60, 84, 116)
    )
    d.rounded_rectangle(
        (sofa[2] - 30, h * 13 // 20, sofa[2] + 20, sofa[3]), radius=12, fill=(60, 84, 116)
    )
    d.rectangle((sofa[0] + 30, h * 7 // 10, sofa[2] - 30, sofa[3]), fill=(82, 110, 146))
    d.line((w * 19 // 20, h * 3 // 10, w * 19 // 20, h * 4 // 5), fill=(40, 40, 40), width=5)
    shade = [(w * 37 // 40, h // 5), (w * 39 // 40, h // 5), (w, h * 3 // 10)]
    d.polygon([*shade, (w * 9 // 10, h * 3 // 10)], fill=(240, 220, 160))  # the lamp
    d.rectangle((w // 6, h * 3 // 5, w // 4, h * 4 // 5), fill=(160, 90, 60))  # pot
    for dx, dy in ((-30, -60), (0, -90), (30, -60), (-15, -40), (18, -35)):
        cx, cy = w * 5 // 24 + dx, h * 3 // 5 + dy
        d.ellipse((cx - 28, cy - 22, cx + 28, cy + 22), fill=(60, 130, 70))
    room.filter(ImageFilter.GaussianBlur(1.2)).save(path)
    return path


def wait(app, until, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not until():
        if time.monotonic() > end:
            raise TimeoutError("the window did not get there in time")
        app.processEvents()
        time.sleep(0.02)


def settle(app, seconds: float = 0.5) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def save(pixmap, path: Path) -> None:
    """As a 256-colour PNG: the window's flat colours survive, and the file stays small."""
    import io

    from PySide6.QtCore import QBuffer, QIODevice

    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    pixmap.save(buffer, "PNG")
    image = Image.open(io.BytesIO(bytes(buffer.data()))).convert("RGB")
    image.quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--platform", default=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    parser.add_argument(
        "--tiny-sd",
        action="store_true",
        help="a tiny random SD model and ControlNet (tests/support) instead of the built-in one",
    )
    args = parser.parse_args()
    os.environ["QT_QPA_PLATFORM"] = args.platform
    from PySide6.QtWidgets import QApplication

    from studio.core.app import Core
    from studio.ui.main_window import MainWindow

    app = QApplication([])
    home = Path(tempfile.mkdtemp(prefix="studio-redesign-"))
    args.out.mkdir(parents=True, exist_ok=True)
    if args.tiny_sd:
        sys.path.insert(0, str(ROOT / "tests"))
        import torch
        from support.random_controlnets import build_random_controlnet, save_controlnet_folder
        from support.random_sd import build_random_sd

        torch.set_num_threads(4)
        base = build_random_sd(home / "data" / "models" / "tiny")
        save_controlnet_folder(build_random_controlnet(base), home / "data" / "models" / "edges")
    core = Core.open(home)
    core.settings.backend, core.settings.seed = "shapes", 7
    if args.tiny_sd:
        core.settings.backend, core.settings.model, core.settings.steps = "diffusion", "tiny", 4
    window = MainWindow(core)
    window.resize(1440, 900)
    window.show()
    wait(app, lambda: window.model_context.context is not None)
    window.input_panel.load(draw_room(home / "living-room.jpg"))
    wait(app, lambda: window.redesign.isVisible())
    if args.tiny_sd:
        wait(app, lambda: bool(window.structure.controlnets))
    window.redesign.button.click()
    window.style_picker.pick(["Living room", "Japandi"])
    window.generate()
    job_id = window.job_id
    wait(app, lambda: core.engine.job(job_id).state.finished)
    settle(app)
    save(window.grab(), args.out / "redesign.png")

    entries = core.history.list()
    window.open_in_viewer(entries[0])
    window.viewer.actions_by_name["compare"].setChecked(True)
    window.viewer.compare_item.set_fraction(0.45)
    settle(app)
    save(window.grab(), args.out / "before-after.png")
    window.close()
    core.close()
    for name in ("redesign.png", "before-after.png"):
        print(args.out / name, (args.out / name).stat().st_size // 1024, "KB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
