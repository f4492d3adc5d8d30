"""Undo after delete: deleted history entries are hidden at once and deleted for good
(rows and files) only once the undo window passes, or when the app closes.

Hiding is in memory only (`HistoryStore.hide`): if the app dies meanwhile, the entries
are simply back at the next start, each with its file; a row never outlives its file,
as `HistoryStore.delete` removes the row first.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

from studio.core.app import Core
from studio.core.history import HistoryEntry

UNDO_WINDOW_MS = 10_000


class PendingDeletes(QObject):
    changed = Signal()  # entries were hidden, came back or went: listings refresh
    offered = Signal(str)  # what an undo would bring back ("" once nothing would)

    def __init__(self, core: Core, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.core = core
        self._batches: list[list[int]] = []  # newest last: Undo brings back the newest
        self.timer = QTimer(self, singleShot=True, interval=UNDO_WINDOW_MS)
        self.timer.timeout.connect(self.commit)

    def pending(self) -> list[int]:
        return [entry_id for batch in self._batches for entry_id in batch]

    def delete(self, entries: Sequence[HistoryEntry]) -> int:
        """Hide `entries` now; they go for good when the undo window passes."""
        ids = [e.id for e in entries if e.id not in self.pending()]
        if not ids:
            return 0
        self.core.history.hide(ids)
        self._batches.append(ids)
        self.timer.start()  # the window runs again from the newest delete
        n = len(ids)
        self.offered.emit(f"{n} image{'s' if n != 1 else ''} deleted")
        self.changed.emit()
        return n

    def undo(self) -> bool:
        """Bring back the most recently deleted entries; False when none wait."""
        if not self._batches:
            return False
        self.core.history.unhide(self._batches.pop())
        if not self._batches:
            self.timer.stop()
            self.offered.emit("")
        self.changed.emit()
        return True

    def commit(self) -> int:
        """Delete every hidden entry for good, rows then files (the window passed, or the
        app is closing); returns how many went."""
        self.timer.stop()
        ids, self._batches = self.pending(), []
        if not ids or self.core.history.closed:
            return 0
        deleted = self.core.history.delete(ids)
        for entry_id in ids:
            self.core.thumbnails.forget(entry_id)
        self.offered.emit("")
        self.changed.emit()
        return deleted


class UndoBar(QWidget):
    """ "3 images deleted  [Undo]" in the status bar while an undo is possible."""

    def __init__(self, pending: PendingDeletes, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel()
        self.button = QPushButton("Undo")
        self.button.setToolTip("Bring the deleted images back (Ctrl+Z in the history)")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label)
        layout.addWidget(self.button)
        self.button.clicked.connect(pending.undo)
        pending.offered.connect(self._offer)
        self.hide()

    def _offer(self, text: str) -> None:
        self.label.setText(text)
        self.setVisible(bool(text))
