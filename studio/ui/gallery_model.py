"""The history gallery's Qt model: every image ever made, newest first, paged in.

Rows arrive a page at a time as the view scrolls (`canFetchMore`/`fetchMore`), so a
history of 100,000 images opens as fast as one of 100. Thumbnails are made (or read
from the disk cache) on the engine's background pool and kept in a bounded memory
cache here; until one is ready the view shows a placeholder.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

from PIL import Image
from PySide6.QtCore import (
    QAbstractListModel,
    QMimeData,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QUrl,
    Signal,
)
from PySide6.QtGui import QColor, QImage, QPainter, QPixmap

from studio.core.app import Core
from studio.core.history import HistoryEntry
from studio.ui.bridge import to_qimage
from studio.ui.tasks import run_in_background

PAGE = 200
MEMORY_THUMBNAILS = 3_000  # ~200 KB each at most: a bounded few hundred MB in the worst case
EntryRole = Qt.ItemDataRole.UserRole + 1

Index = QModelIndex | QPersistentModelIndex


def image_mime_data(paths: list[Path], prompts: list[str]) -> QMimeData:
    """Drag (or clipboard) data for image files: file URLs, the image when there is
    one (apps that take pixels, not files), and the prompts as plain text."""
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(path)) for path in paths])
    if len(paths) == 1:
        image = QImage(str(paths[0]))
        if not image.isNull():
            data.setImageData(image)
    data.setText("\n".join(prompts))
    return data


class GalleryModel(QAbstractListModel):
    #: An entry whose image could not be read for a thumbnail: it keeps the placeholder.
    thumbnail_failed = Signal(int)

    def __init__(
        self,
        core: Core,
        parent: QObject | None = None,
        *,
        page: int = PAGE,
        memory_thumbnails: int = MEMORY_THUMBNAILS,
        icon_side: int = 128,
    ) -> None:
        super().__init__(parent)
        self.core = core
        self.page = page
        self.icon_side = icon_side
        self.pixel_ratio = 1.0  # the screen's device pixels per logical pixel (the view sets it)
        self.memory_thumbnails = memory_thumbnails
        self.query = ""
        self.filters: dict[str, Any] = {}
        self._entries: list[HistoryEntry] = []
        self._row_of: dict[int, int] = {}
        self._total = 0
        self._pixmaps: OrderedDict[int, QPixmap] = OrderedDict()  # least recently used first
        self._pending: set[int] = set()
        # As large as a thumbnail: the view sizes every cell from the first one it sees.
        self._placeholder = QPixmap(icon_side, icon_side)
        self._placeholder.fill(QColor(128, 128, 128, 40))
        self.refresh()

    # -- what is listed ---------------------------------------------------------------

    def set_search(self, query: str = "", **filters: Any) -> None:
        """Show the entries matching `query` (prompt words) and `filters` (those of
        `HistoryStore.list`: favourites_only, backend, model, since, until)."""
        self.query, self.filters = query, filters
        self.refresh()

    def refresh(self) -> None:
        """Read the listing again from the start (after new images, deletions, ...)."""
        self.beginResetModel()
        self._entries, self._row_of = [], {}
        self._total = self.core.history.count(query=self.query, **self.filters)
        self.endResetModel()

    def total(self) -> int:
        """Entries that match, paged in or not."""
        return self._total

    def entry(self, row: int) -> HistoryEntry:
        return self._entries[row]

    def row_of(self, entry_id: int) -> int | None:
        return self._row_of.get(entry_id)

    # -- QAbstractListModel -----------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._entries)

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:  # noqa: B008
        # The view may still ask while the window closes, after the store has closed.
        closed = self.core.history.closed
        return not closed and not parent.isValid() and len(self._entries) < self._total

    def fetchMore(self, parent: Index = QModelIndex()) -> None:  # noqa: B008
        if not self.canFetchMore(parent):
            return
        start = len(self._entries)
        page = self.core.history.search(self.query, offset=start, limit=self.page, **self.filters)
        if not page:  # rows went away since the count: stop asking
            self._total = start
            return
        self.beginInsertRows(QModelIndex(), start, start + len(page) - 1)
        for entry in page:
            self._row_of[entry.id] = len(self._entries)
            self._entries.append(entry)
        self.endInsertRows()

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._entries):
            return None
        entry = self._entries[index.row()]
        if role == Qt.ItemDataRole.DecorationRole:
            return self._thumbnail(entry)
        if role == Qt.ItemDataRole.ToolTipRole:
            return entry.request.prompt[:500]
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return entry.request.prompt[:200]
        if role == EntryRole:
            return entry
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        enabled = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        return enabled | Qt.ItemFlag.ItemIsDragEnabled | Qt.ItemFlag.ItemNeverHasChildren

    def mimeTypes(self) -> list[str]:
        return ["text/uri-list", "application/x-qt-image", "text/plain"]

    def mimeData(self, indexes: list[QModelIndex]) -> QMimeData:
        """What a drag carries out of the gallery: the files' URLs (for file managers
        and most apps), the image itself when there is one, and the prompts as text."""
        entries = [self._entries[i.row()] for i in indexes if i.isValid()]
        return image_mime_data([e.path for e in entries], [e.request.prompt for e in entries])

    # -- thumbnails -------------------------------------------------------------------

    def _thumbnail(self, entry: HistoryEntry) -> QPixmap:
        """The cached thumbnail, or the placeholder. Asking for data never starts work:
        views ask for rows they do not show (layout, accessibility), so thumbnails are
        made for the rows `request_thumbnails` names, those on screen."""
        pixmap = self._pixmaps.get(entry.id)
        if pixmap is None:
            return self._placeholder
        self._pixmaps.move_to_end(entry.id)
        return pixmap

    def has_thumbnail(self, entry_id: int) -> bool:
        return entry_id in self._pixmaps

    def request_thumbnails(self, first: int, last: int) -> None:
        """Make (or read from the disk cache) the thumbnails of rows first..last."""
        side = round(self.icon_side * self.pixel_ratio)  # sharp on high-DPI screens
        for row in range(max(0, first), min(last, len(self._entries) - 1) + 1):
            entry = self._entries[row]
            if entry.id in self._pixmaps or entry.id in self._pending or entry.missing:
                continue
            self._pending.add(entry.id)
            run_in_background(
                self.core.engine,
                self,
                lambda entry=entry: _icon(self.core.thumbnails.get(entry.id, entry.path), side),
                lambda image, entry=entry: self._on_thumbnail(entry.id, image),
                lambda _error, entry=entry: self.thumbnail_failed.emit(entry.id),
            )  # unreadable: it stays pending (not tried again), the placeholder stays

    def _on_thumbnail(self, entry_id: int, image: QImage) -> None:
        self._pending.discard(entry_id)
        pixmap = QPixmap.fromImage(image)
        pixmap.setDevicePixelRatio(max(image.width(), image.height()) / self.icon_side)
        self._pixmaps[entry_id] = pixmap
        while len(self._pixmaps) > self.memory_thumbnails:
            self._pixmaps.popitem(last=False)
        row = self._row_of.get(entry_id)
        if row is not None:
            index = self.index(row)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])


def _icon(thumbnail: Image.Image, side: int) -> QImage:
    """A thumbnail as the QImage the view shows (on a worker: QImage is thread-safe).
    Smaller than the icon, it is enlarged with sharp pixels (pixel art stays crisp). A
    faint frame shows where a picture on a white background ends."""
    image = to_qimage(thumbnail)
    if max(image.width(), image.height()) < side:
        image = image.scaled(
            side, side, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation
        )
    image = image.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)
    painter = QPainter(image)
    painter.setPen(QColor(0, 0, 0, 60))
    painter.drawRect(0, 0, image.width() - 1, image.height() - 1)
    painter.end()
    return image
