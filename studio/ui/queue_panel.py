"""The job queue, visible and editable: the running job first, then those waiting.
Cancel stops the running job at its next step and drops a waiting one at once."""

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

from studio.core.engine import Engine
from studio.ui.bridge import EngineBridge

JobIdRole = Qt.ItemDataRole.UserRole + 1


class QueuePanel(QWidget):
    def __init__(self, engine: Engine, bridge: EngineBridge, parent: QWidget | None = None):
        super().__init__(parent)
        self.engine = engine
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
        bridge.state_changed.connect(lambda *_: self._show())
        self._show()

    def job_ids(self) -> list[int]:
        return [self.jobs.item(i).data(JobIdRole) for i in range(self.jobs.count())]

    def cancel_selected(self) -> None:
        for item in self.jobs.selectedItems():
            self.engine.cancel(item.data(JobIdRole))

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
            prompt = r.prompt if len(r.prompt) <= 60 else r.prompt[:59] + "…"
            state = job.state.value if job is running else f"waiting · {r.count} of {r.candidates}"
            item = QListWidgetItem(f"{prompt}  —  {state}")
            item.setData(JobIdRole, job.id)
            item.setToolTip(f"job {job.id} · {r.backend} · seed {r.seed}\n{r.prompt[:500]}")
            self.jobs.addItem(item)
            item.setSelected(job.id in selected)
        self.cancel_all_button.setEnabled(bool(jobs))
        self.cancel_button.setEnabled(bool(jobs))
