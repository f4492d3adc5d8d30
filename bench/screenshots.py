"""Screenshots of the real window in its main states, with the built-in model.

    .venv/bin/python bench/screenshots.py [--out docs/screenshots] [--platform offscreen]

States: empty, generating (a preview on the canvas), results, the gallery with many
entries, the viewer. Runs in a fresh data folder; nothing of the user's is touched.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PROMPT = "three yellow hearts on a black background"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--platform", default=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    parser.add_argument("--gallery", type=int, default=300, help="images in the history")
    args = parser.parse_args()
    os.environ["QT_QPA_PLATFORM"] = args.platform
    from PySide6.QtWidgets import QApplication

    from shapes_lab.render import render_array
    from shapes_lab.sampler import SceneSampler
    from studio.core.app import Core
    from studio.ui.main_window import MainWindow

    app = QApplication([])
    home = Path(tempfile.mkdtemp(prefix="studio-screens-"))
    args.out.mkdir(parents=True, exist_ok=True)

    def settle(seconds: float = 0.5) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.005)

    def shot(window: MainWindow, name: str) -> None:
        settle()
        path = args.out / f"{name}.png"
        window.grab().save(str(path))
        print(f"wrote {path}")

    try:
        core = Core.open(home)
        core.reconciled.result()
        window = MainWindow(core)
        window.resize(1280, 760)
        window.show()
        shot(window, "1-empty")

        window.prompt.setPlainText(PROMPT)

        def on_preview(*_) -> None:  # after the window's own slot: the preview is shown
            window.grab().save(str(args.out / "2-generating.png"))  # the last one stays

        window.bridge.preview.connect(on_preview)
        window.generate()
        while core.history.count() < 4:
            app.processEvents()
        window.bridge.preview.disconnect(on_preview)
        print(f"wrote {args.out / '2-generating.png'}")
        shot(window, "3-results")

        from PIL import Image

        from studio.core.metadata import ImageMetadata
        from studio.core.request import GenerationRequest

        sampler = SceneSampler(11)
        for job in range(args.gallery // 4):
            scenes = [sampler.scene() for _ in range(4)]
            items = [
                (
                    Image.fromarray(render_array(s)),
                    ImageMetadata(
                        GenerationRequest(s.caption, seed=job * 4 + i, backend="shapes"), rank=i
                    ),
                )
                for i, s in enumerate(scenes)
            ]
            core.history.save(items, f"screens-{job}")
        window.gallery.model.refresh()
        shot(window, "4-gallery")
        window.open_in_viewer(core.history.list()[0])
        shot(window, "5-viewer")
        window.close()
        core.close()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
