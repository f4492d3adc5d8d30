"""The history gallery panel: search, favourites filter, thumbnails, drag out, delete,
use as the input picture."""

from __future__ import annotations

import time

from PySide6.QtCore import QModelIndex, QPoint, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QMessageBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.core.app import Core
from studio.core.history import HistoryEntry
from studio.ui.export_dialog import ExportDialog
from studio.ui.gallery_model import GalleryModel
from studio.ui.undo_delete import PendingDeletes

SEARCH_DELAY_MS = 200  # wait for a pause in typing before searching
PERIODS = (("Any time", 0), ("Today", 1), ("Last 7 days", 7), ("Last 30 days", 30))
VISIBLE_DELAY_MS = 30  # thumbnails for what is on screen once scrolling pauses


class GalleryPanel(QWidget):
    entry_activated = Signal(object)  # HistoryEntry: double-click or Enter
    use_as_input = Signal(object)  # HistoryEntry: its context menu's "Use as input"
    vary = Signal(object)  # HistoryEntry: its context menu's "Vary"

    def __init__(self, core: Core, parent: QWidget | None = None, icon_side: int = 128) -> None:
        super().__init__(parent)
        self.core = core
        self.model = GalleryModel(core, self, icon_side=icon_side)
        self.pending = PendingDeletes(core, self)  # deletes wait a moment for an undo
        self.pending.changed.connect(self.model.refresh)

        self.search = QLineEdit()
        self.search.setPlaceholderText("Search prompts…")
        self.search.setClearButtonEnabled(True)
        self.favourites = QToolButton()
        self.favourites.setText("★")
        self.favourites.setToolTip("Favourites only")
        self.favourites.setCheckable(True)
        self.count = QLabel()
        self.backend = QComboBox()
        self.backend.addItem("All backends", "")
        for backend_id in core.registry.ids():
            self.backend.addItem(backend_id, backend_id)
        self.period = QComboBox()
        for label, days in PERIODS:
            self.period.addItem(label, days)

        self.view = QListView()
        self.view.setViewMode(QListView.ViewMode.IconMode)
        self.view.setMovement(QListView.Movement.Static)
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.setUniformItemSizes(True)  # no per-row size queries: smooth at 100,000
        self.view.setLayoutMode(QListView.LayoutMode.Batched)  # lays out new rows in steps
        self.view.setIconSize(QSize(icon_side, icon_side))
        self.view.setGridSize(QSize(icon_side + 12, icon_side + 12))
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.view.setDragEnabled(True)
        self.view.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.view.setModel(self.model)

        top = QHBoxLayout()
        top.addWidget(self.search, 1)
        top.addWidget(self.favourites)
        filters = QHBoxLayout()
        filters.addWidget(self.backend, 1)
        filters.addWidget(self.period, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addLayout(filters)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.count)

        self._search_timer = QTimer(self, singleShot=True, interval=SEARCH_DELAY_MS)
        self._search_timer.timeout.connect(self.apply_search)
        self.search.textChanged.connect(self._search_timer.start)
        self.favourites.toggled.connect(self.apply_search)
        self.backend.currentIndexChanged.connect(self.apply_search)
        self.period.currentIndexChanged.connect(self.apply_search)
        self.view.activated.connect(self._on_activated)
        self.model.modelReset.connect(self._show_count)
        # Thumbnails for the rows on screen, once scrolling or paging pauses a moment.
        self._visible_timer = QTimer(self, singleShot=True, interval=VISIBLE_DELAY_MS)
        self._visible_timer.timeout.connect(self._request_visible)
        self.view.verticalScrollBar().valueChanged.connect(self._visible_timer.start)
        self.model.rowsInserted.connect(self._visible_timer.start)
        self.model.modelReset.connect(self._visible_timer.start)

        self.use_input_action = self._action("Use as input", "Ctrl+I", self._use_as_input)
        self.vary_action = self._action(
            "Vary", "Ctrl+Shift+V", lambda: self._emit_current(self.vary)
        )
        self.favourite_action = self._action("Favourite", "F", self.toggle_favourite)
        self.delete_action = self._action(
            "Delete", QKeySequence.StandardKey.Delete, lambda: self.delete_selected()
        )
        self.undo_action = self._action("Undo delete", QKeySequence.StandardKey.Undo, self.undo)
        self.export_action = self._action("Export…", "Ctrl+E", self.export_selected)
        self._show_count()

    def _action(self, text: str, keys, slot) -> QAction:
        action = QAction(text, self.view)
        action.setShortcut(QKeySequence(keys))
        action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        action.triggered.connect(slot)
        self.view.addAction(action)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        return action

    def apply_search(self) -> None:
        self._search_timer.stop()  # typing then toggling a filter: one search, not two
        filters: dict[str, object] = {}
        if self.favourites.isChecked():
            filters["favourites_only"] = True
        if self.backend.currentData():
            filters["backend"] = self.backend.currentData()
        days = self.period.currentData()
        if days:
            filters["since"] = time.time() - days * 86_400
        self.model.set_search(self.search.text(), **filters)

    def selected_entries(self) -> list[HistoryEntry]:
        rows = sorted(index.row() for index in self.view.selectionModel().selectedIndexes())
        return [self.model.entry(row) for row in rows]

    def _use_as_input(self) -> None:
        self._emit_current(self.use_as_input)

    def _emit_current(self, signal) -> None:
        """`signal` with the entry clicked (when several are selected), else the first."""
        current = self.view.currentIndex()
        entries = self.selected_entries()
        if current.isValid():
            signal.emit(self.model.entry(current.row()))
        elif entries:
            signal.emit(entries[0])

    def toggle_favourite(self) -> None:
        entries = self.selected_entries()
        if not entries:
            return
        favourite = not all(e.favourite for e in entries)  # mixed: make all favourites
        for entry in entries:
            self.core.history.set_favourite(entry.id, favourite)
        self.model.refresh()

    def delete_selected(self, confirm: bool = False) -> int:
        """Delete the selected entries (Ctrl+Z or the status bar's Undo brings them back
        for a few seconds); with `confirm`, after asking."""
        entries = self.selected_entries()
        if not entries:
            return 0
        if confirm:
            n = len(entries)
            answer = QMessageBox.question(
                self, "Delete images", f"Delete {n} image{'s' if n > 1 else ''}?"
            )
            if answer != QMessageBox.StandardButton.Yes:
                return 0
        return self.pending.delete(entries)

    def undo(self) -> bool:
        """Bring back the images deleted last, while the undo window lasts."""
        return self.pending.undo()

    def export_selected(self) -> ExportDialog | None:
        entries = self.selected_entries()
        if not entries:
            return None
        dialog = ExportDialog(self.core, entries, self)
        dialog.open()  # not exec(): the app keeps working while the dialog is up
        return dialog

    def _request_visible(self) -> None:
        self.model.pixel_ratio = self.view.devicePixelRatioF()
        viewport = self.view.viewport().rect()
        first = self.view.indexAt(viewport.topLeft() + QPoint(4, 4))
        last = self.view.indexAt(viewport.bottomRight() - QPoint(4, 4))
        start = first.row() if first.isValid() else 0
        end = last.row() if last.isValid() else self.model.rowCount() - 1
        per_screen = max(1, end - start + 1)
        self.model.request_thumbnails(start, end + per_screen)  # and the next screen

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._visible_timer.start()

    def _on_activated(self, index: QModelIndex) -> None:
        if index.isValid():
            self.entry_activated.emit(self.model.entry(index.row()))

    def _show_count(self) -> None:
        total = self.model.total()
        self.count.setText(f"{total:,} image{'s' if total != 1 else ''}")
