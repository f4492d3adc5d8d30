"""The desktop app stays responsive: event-loop stalls of the real window, offscreen.

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/bench_app.py [--entries 10000] [--jobs 3]

A heartbeat timer on the GUI thread ticks every 5 ms; a stall is how late a tick comes.
Measured while the built-in model generates (default request, model load included in
the first job), while the history gallery opens with `--entries` images, and while it
scrolls through all of them. Targets: stall p99 <= 50 ms and max <= 100 ms while
generating; the gallery open <= 1 s; scrolling stalls <= 50 ms.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image
from PySide6.QtCore import QElapsedTimer, QTimer
from PySide6.QtWidgets import QApplication

from studio.core.app import Core
from studio.core.metadata import ImageMetadata
from studio.core.request import GenerationRequest

TICK_MS = 5
PROMPT = "three yellow hearts on a black background"


class Heartbeat:
    """Ticks on the GUI thread; records how late each tick is."""

    def __init__(self) -> None:
        self.clock = QElapsedTimer()
        self.late: list[float] = []
        self.timer = QTimer(interval=TICK_MS)
        self.timer.timeout.connect(self._tick)

    def start(self) -> None:
        self.late.clear()
        self.clock.start()
        self.last = 0
        self.timer.start()

    def _tick(self) -> None:
        now = self.clock.elapsed()
        self.late.append(max(0, now - self.last - TICK_MS))
        self.last = now

    def stop(self) -> tuple[float, float]:
        self.timer.stop()
        late = sorted(self.late) or [0.0]
        return late[min(len(late) - 1, int(0.99 * len(late)))], late[-1]


def wait(app: QApplication, done, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError("gave up waiting")
        app.processEvents()
        time.sleep(0.001)


def fill_history(core: Core, entries: int) -> None:
    """`entries` rows, each with its own small image file (thumbnails are made from them)."""
    folder = core.paths.images / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(entries):
        Image.new("RGB", (64, 64), (i % 256, 255 - i % 256, 90)).save(folder / f"{i}.png")
    rows = (
        (
            ImageMetadata(
                GenerationRequest(f"{PROMPT} {i}", seed=i, backend="shapes"), created_at=1.7e9 + i
            ),
            f"bench{i}",
            f"images/bench/{i}.png",
        )
        for i in range(entries)
    )
    core.history.insert_records(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=3)
    args = parser.parse_args()
    app = QApplication([])
    home = Path(tempfile.mkdtemp(prefix="studio-bench-app-"))
    rows: list[tuple[str, str, str]] = []
    try:
        core = Core.open(home)
        core.reconciled.result()
        fill_history(core, args.entries)
        from studio.ui.gallery import GalleryPanel
        from studio.ui.main_window import MainWindow

        gc.freeze()  # as the app does once its window is shown (studio/ui/app.py)
        heart = Heartbeat()
        heart.start()
        started = time.perf_counter()
        panel = GalleryPanel(core)
        panel.resize(460, 700)
        panel.show()
        wait(app, lambda: panel.model.rowCount() > 0)
        app.processEvents()
        opened = time.perf_counter() - started
        p99, worst = heart.stop()
        rows.append((f"gallery opens, {args.entries:,} entries", f"{opened:.3f} s", "<= 1 s"))
        rows.append(("  stall while opening, p99 / max", f"{p99:.0f} / {worst:.0f} ms", ""))
        on_screen = [panel.model.entry(r).id for r in range(min(15, panel.model.rowCount()))]
        wait(app, lambda: all(map(panel.model.has_thumbnail, on_screen)))
        rows.append(
            ("  first screen of thumbnails shown", f"{time.perf_counter() - started:.3f} s", "")
        )

        bar = panel.view.verticalScrollBar()
        heart.start()
        while bar.value() < bar.maximum() or panel.model.canFetchMore(
            panel.model.index(0).parent()
        ):
            bar.setValue(bar.value() + panel.view.viewport().height())
            app.processEvents()
        p99, worst = heart.stop()
        rows.append(
            (
                f"scroll through {panel.model.rowCount():,} entries, stall p99 / max",
                f"{p99:.0f} / {worst:.0f} ms",
                "<= 50 ms",
            )
        )
        panel.close()

        window = MainWindow(core)
        window.show()
        window.prompt.setPlainText(PROMPT)
        settle_until = time.monotonic() + 1.0  # the window's first paint and layout are
        while time.monotonic() < settle_until:  # start-up, not generation: let them pass
            app.processEvents()
            time.sleep(0.005)
        for job in range(args.jobs):
            heart.start()
            began = time.perf_counter()
            before = core.history.count()
            window.generate()
            wait(app, lambda b=before: core.history.count() >= b + 4)
            p99, worst = heart.stop()
            what = "first job (model load included)" if job == 0 else f"job {job + 1}"
            rows.append(
                (
                    f"generating, {what}: stall p99 / max",
                    f"{p99:.0f} / {worst:.0f} ms",
                    "<= 50 / 100 ms",
                )
            )
            rows.append(("  the job took", f"{time.perf_counter() - began:.2f} s", ""))
        window.close()
        core.close()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print(f"{'measure':<58}{'measured':>16}{'target':>16}")
    for name, value, target in rows:
        print(f"{name:<58}{value:>16}{target:>16}")
    print(f"(a heartbeat every {TICK_MS} ms on the GUI thread; one run: repeat to compare)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
