"""The job queue, visible and editable: the running job first, with its phase in the
words the progress bar uses ("Loading model… 1.2 / 4.3 GB", "Step 3 of 25", "Decoding…",
"Saving…"), then those waiting. Cancel stops the running job at its next step and drops
a waiting one at once."""

from __future__ import annotations

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from studio.core.backend import LOADING
from studio.core.engine import Engine
from studio.ui.bridge import EngineBridge
from studio.ui.job_progress import phase_text

JobIdRole = Qt.ItemDataRole.UserRole + 1
PromptRole = Qt.ItemDataRole.UserRole + 2


class QueuePanel(QWidget):
    def __init__(self, engine: Engine, bridge: EngineBridge, parent: QWidget | None = None):
        super().__init__(parent)
        self.engine = engine
        self._phases: dict[int, str] = {}  # a job's phase in words, while it runs
        self.jobs = QListWidget()
        self.jobs.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.cancel_button = QPushButton("Cancel selected")
        self.cancel_button.setShortcut(QKeySequence.StandardKey.Delete)
        self.cancel_all_button = QPushButton("Cancel all")
        buttons = QHBoxLayout()
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.cancel_all_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.jobs, 1)
        layout.addLayout(buttons)
        self.cancel_button.clicked.connect(self.cancel_selected)
        self.cancel_all_button.clicked.connect(engine.cancel_all)
        bridge.queue_changed.connect(self._show)
        bridge.state_changed.connect(self._on_state)
        bridge.progress.connect(self._on_progress)
        self._show()

    def job_ids(self) -> list[int]:
        return [self.jobs.item(i).data(JobIdRole) for i in range(self.jobs.count())]

    def cancel_selected(self) -> None:
        for item in self.jobs.selectedItems():
            self.engine.cancel(item.data(JobIdRole))

    @Slot(int, str)
    def _on_state(self, job_id: int, state: str) -> None:
        if state == "loading":
            self._phases[job_id] = phase_text(LOADING, 0, 0)
        elif state in ("done", "cancelled", "failed"):
            self._phases.pop(job_id, None)
        self._show()

    @Slot(int, object, object, str)
    def _on_progress(self, job_id: int, step: int, total: int, phase: str) -> None:
        """The running job's line says its phase; the others stay as they are (progress
        comes often: one line's text changes, the list is not rebuilt). Only a running
        job reports progress, and all of it before it ends: its phase is dropped then."""
        self._phases[job_id] = phase_text(phase, step, total)
        for i in range(self.jobs.count()):
            item = self.jobs.item(i)
            if item.data(JobIdRole) == job_id:
                prompt = item.data(PromptRole)
                item.setText(self._line(prompt, self._phases[job_id]))

    @staticmethod
    def _line(prompt: str, state: str) -> str:
        shown = prompt if len(prompt) <= 60 else prompt[:59] + "…"
        return f"{shown}  —  {state}"

    @Slot()
    def _show(self, *_: object) -> None:
        """List what the engine holds now (events only say that something changed)."""
        running = self.engine.running()
        jobs = [running] if running is not None and not running.state.finished else []
        jobs += self.engine.queued()
        selected = {item.data(JobIdRole) for item in self.jobs.selectedItems()}
        self.jobs.clear()
        for job in jobs:
            r = job.request
            if job is running:
                state = self._phases.get(job.id, job.state.value)
            else:
                state = f"waiting · {r.count} of {r.candidates}"
            item = QListWidgetItem(self._line(r.prompt, state))
            item.setData(JobIdRole, job.id)
            item.setData(PromptRole, r.prompt)
            item.setToolTip(f"job {job.id} · {r.backend} · seed {r.seed}\n{r.prompt[:500]}")
            self.jobs.addItem(item)
            item.setSelected(job.id in selected)
        self.cancel_all_button.setEnabled(bool(jobs))
        self.cancel_button.setEnabled(bool(jobs))
