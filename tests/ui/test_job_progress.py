"""The window shows each phase of a job (loading bytes, steps, decoding, saving) in words
and as a bar, driven by the real engine and the fake backend."""

from __future__ import annotations

from PySide6.QtCore import QObject, Slot

from studio.core.request import GenerationRequest
from studio.ui.main_window import MainWindow

WAIT_MS = 10_000


class Shown(QObject):
    """What the progress widget shows after each progress signal (its slot is queued
    after the window's, on the GUI thread)."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__()
        self.window = window
        self.seen: list[tuple[str, int, int]] = []
        window.bridge.progress.connect(self.record)

    @Slot(int, object, object, str)
    def record(self, *_: object) -> None:
        bar = self.window.progress.bar
        self.seen.append((self.window.progress.label.text(), bar.value(), bar.maximum()))

    def texts(self) -> list[str]:
        return [text for text, _, _ in self.seen]


def submit(window: MainWindow, **options: object) -> None:
    request = GenerationRequest(
        "a fake",
        backend="fake",
        model="big",
        width=16,
        height=16,
        count=2,
        steps=3,
        options=options,
    )
    window.core.engine.submit(request)  # the window follows the job the engine starts


def test_every_phase_is_shown_in_words_and_as_a_bar(qtbot, gated_window) -> None:
    import fake_backend

    shown = Shown(gated_window)
    submit(gated_window, decode_tiles=2)
    progress = gated_window.progress
    qtbot.waitUntil(lambda: progress.label.text() == "Loading model… 2.1 / 4.3 GB", timeout=WAIT_MS)
    assert (progress.bar.value(), progress.bar.maximum()) == (500, 1000)  # halfway, held
    fake_backend.LOAD_GATE.set()
    qtbot.waitUntil(lambda: gated_window.core.history.count() == 2, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: progress.label.text() == "", timeout=WAIT_MS)  # done
    after_loading = shown.seen[shown.texts().index("Step 1 of 3") :]
    assert after_loading == [
        ("Step 1 of 3", 1, 3),
        ("Step 2 of 3", 2, 3),
        ("Step 3 of 3", 3, 3),
        ("Decoding…", 0, 2),
        ("Decoding tile 1 of 2", 1, 2),
        ("Decoding tile 2 of 2", 2, 2),
        ("Saving…", 0, 2),
        ("Saving…", 2, 2),
    ]
    assert ("Loading model… 4.3 / 4.3 GB", 1000, 1000) in shown.seen
    assert progress.bar.value() == progress.bar.maximum()  # the finished job's bar stays full


def test_decoding_in_one_piece_is_a_busy_bar(qtbot, gated_window) -> None:
    import fake_backend

    fake_backend.LOAD_GATE.set()
    shown = Shown(gated_window)
    submit(gated_window, decode_tiles=0)
    qtbot.waitUntil(lambda: gated_window.core.history.count() == 2, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: "Saving…" in shown.texts(), timeout=WAIT_MS)
    assert ("Decoding…", 0, 0) in shown.seen  # a busy bar: no fraction to show
    qtbot.waitUntil(lambda: gated_window.progress.bar.maximum() > 0, timeout=WAIT_MS)
