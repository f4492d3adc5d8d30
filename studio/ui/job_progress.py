"""The running job's progress: a bar, and beside it what the job is doing in words."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QWidget

from studio.core.backend import DECODING, LOADING, SAVING
from studio.core.load_progress import bytes_read

PER_MILLE = 1000  # bytes loaded are shown in thousandths: a bar counts in 32-bit ints
LOADING_MODEL = "Loading model…"  # until the backend counts the bytes it reads


def phase_text(phase: str, step: int, total: int) -> str:
    """What a job does, in words, from its progress: "Loading model… 1.2 / 4.3 GB",
    "Step 3 of 25", "Decoding…" or "Decoding tile 3 of 12", "Saving…"."""
    if phase == LOADING:
        return f"{LOADING_MODEL} {bytes_read(step, total, 1)}" if total else LOADING_MODEL
    if phase == DECODING:
        return f"Decoding tile {step} of {total}" if total > 1 and step else "Decoding…"
    if phase == SAVING:
        return "Saving…"
    return f"Step {step} of {total}"


class JobProgress(QWidget):
    """What the job does, in words ("Loading model… 1.2 / 4.3 GB", "Step 3 of 25",
    "Decoding…" or "Decoding tile 3 of 12", "Saving…"), beside a bar of its fraction
    (busy while it decodes in one piece)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bar = QProgressBar()
        self.bar.setTextVisible(False)
        self.label = QLabel()
        self.label.setMinimumWidth(self.label.fontMetrics().horizontalAdvance("0") * 26)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.bar, 1)
        layout.addWidget(self.label)

    def clear(self) -> None:
        self._show("", 0, 1)

    def show_state(self, state: str) -> None:
        """A job's new state: loading is busy until bytes are counted; a finished job's
        bar stays where it ended."""
        if state == "loading":
            self._show(LOADING_MODEL, 0, 0)
        elif state in ("done", "cancelled", "failed"):
            self.label.setText("")
            if self.bar.maximum() == 0:  # no busy bar left running
                self.bar.setRange(0, 1)

    def show_progress(self, phase: str, step: int, total: int) -> None:
        text = phase_text(phase, step, total)
        if phase == LOADING:
            fraction = step * PER_MILLE // total if total else 0
            self._show(text, fraction, PER_MILLE)
        elif phase == DECODING:
            self._show(text, step, total if total > 1 else 0)  # one piece: busy
        else:
            self._show(text, step, total)

    def _show(self, text: str, value: int, maximum: int) -> None:
        self.label.setText(text)
        self.bar.setRange(0, maximum)
        self.bar.setValue(value)
