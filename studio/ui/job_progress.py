"""The running job's progress: a bar, and beside it what the job is doing in words."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QWidget

from studio.core.backend import DECODING, LOADING, SAVING
from studio.core.load_progress import bytes_read

PER_MILLE = 1000  # bytes loaded are shown in thousandths: a bar counts in 32-bit ints


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
            self._show("Loading model…", 0, 0)
        elif state in ("done", "cancelled", "failed"):
            self.label.setText("")
            if self.bar.maximum() == 0:  # no busy bar left running
                self.bar.setRange(0, 1)

    def show_progress(self, phase: str, step: int, total: int) -> None:
        if phase == LOADING:
            fraction = step * PER_MILLE // total if total else 0
            self._show(f"Loading model… {bytes_read(step, total, 1)}", fraction, PER_MILLE)
        elif phase == DECODING:
            tiles = total > 1
            text = f"Decoding tile {step} of {total}" if tiles and step else "Decoding…"
            self._show(text, step, total if tiles else 0)  # one piece: busy
        elif phase == SAVING:
            self._show("Saving…", step, total)
        else:
            self._show(f"Step {step} of {total}", step, total)

    def _show(self, text: str, value: int, maximum: int) -> None:
        self.label.setText(text)
        self.bar.setRange(0, maximum)
        self.bar.setValue(value)
