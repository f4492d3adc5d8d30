"""The queue panel says the running job's phase in the words the progress bar beside it
uses (loading bytes, each step, decoding, saving); the jobs waiting keep theirs. Driven
by the real engine and the fake backend, offscreen."""

from __future__ import annotations

from PySide6.QtCore import QObject, Slot

from studio.core.request import GenerationRequest
from studio.ui.job_progress import phase_text
from studio.ui.main_window import MainWindow

WAIT_MS = 10_000


class QueueLines(QObject):
    """What the queue says of each job after each of its progress signals (this slot is
    queued after the panel's, on the GUI thread)."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__()
        self.window = window
        self.seen: list[tuple[int, list[str]]] = []
        window.bridge.progress.connect(self.record)

    @Slot(int, object, object, str)
    def record(self, job_id: int, *_: object) -> None:
        self.seen.append((job_id, self.lines()))

    def lines(self) -> list[str]:
        jobs = self.window.queue.jobs
        return [jobs.item(i).text() for i in range(jobs.count())]

    def said(self, job_id: int, prompt: str) -> list[str]:
        """What its line said after its progress signals, in order, each change once."""
        said = [
            line.removeprefix(f"{prompt}  —  ")
            for job, lines in self.seen
            if job == job_id
            for line in lines
            if line.startswith(f"{prompt}  —  ")
        ]
        return [s for i, s in enumerate(said) if i == 0 or said[i - 1] != s]


def submit(window: MainWindow, prompt: str, **options: object) -> int:
    request = GenerationRequest(
        prompt, backend="fake", model="big", width=16, height=16, count=2, steps=3, options=options
    )
    return window.core.engine.submit(request).id


def test_the_running_job_says_its_phase_as_the_bar_does(qtbot, gated_window) -> None:
    import fake_backend

    lines = QueueLines(gated_window)
    first = submit(gated_window, "a fake", decode_tiles=2, step_s=0.02)
    second = submit(gated_window, "waits its turn", step_s=0.02)
    loading = "a fake  —  Loading model… 2.1 / 4.3 GB"
    qtbot.waitUntil(lambda: lines.lines()[:1] == [loading], timeout=WAIT_MS)
    assert gated_window.progress.label.text() == "Loading model… 2.1 / 4.3 GB"  # the bar's words
    assert lines.lines()[1] == "waits its turn  —  waiting · 2 of 2"
    fake_backend.LOAD_GATE.set()
    qtbot.waitUntil(lambda: gated_window.core.history.count() == 4, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: lines.lines() == [], timeout=WAIT_MS)
    said = lines.said(first, "a fake")
    assert "Loading model… 4.3 / 4.3 GB" in said
    assert said[said.index("Step 1 of 3") :] == [
        "Step 1 of 3",
        "Step 2 of 3",
        "Step 3 of 3",
        "Decoding…",
        "Decoding tile 1 of 2",
        "Decoding tile 2 of 2",
        "Saving…",
    ]
    # the model is loaded already: its steps at once; while the first ran, it waited
    waited, ran = "waiting · 2 of 2", ["Step 1 of 3", "Step 2 of 3", "Step 3 of 3", "Saving…"]
    assert lines.said(first, "waits its turn") == [waited]
    assert lines.said(second, "waits its turn") == ran


def test_the_words_are_the_progress_bars() -> None:
    assert phase_text("loading", 2_135_000_000, 4_270_000_000) == "Loading model… 2.1 / 4.3 GB"
    assert phase_text("loading", 0, 0) == "Loading model…"  # bytes not counted (yet)
    assert phase_text("steps", 3, 25) == "Step 3 of 25"
    assert phase_text("decoding", 0, 1) == "Decoding…"
    assert phase_text("decoding", 3, 12) == "Decoding tile 3 of 12"
    assert phase_text("saving", 1, 2) == "Saving…"
