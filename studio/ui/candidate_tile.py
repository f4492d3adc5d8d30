"""One candidate on the canvas: shows a preview, then a result; double-click opens it in
the viewer, dragging it out carries the file (as the gallery's items do)."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QDrag, QImage, QMouseEvent, QPixmap
from PySide6.QtWidgets import QApplication, QLabel, QWidget

from studio.core.history import HistoryEntry
from studio.ui.gallery_model import image_mime_data


class CandidateTile(QLabel):
    opened = Signal(object)  # HistoryEntry

    def __init__(self, side: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.side = side
        self.entry: HistoryEntry | None = None
        self._press: QPoint | None = None
        # A frame outside the image, so a white picture still shows where it ends.
        self.setFixedSize(side + 2, side + 2)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setStyleSheet("background: palette(base); border: 1px solid palette(mid);")

    def show_image(self, image: QImage, entry: HistoryEntry | None = None) -> None:
        """A preview (no entry yet) or a result. Pixel art: enlarged without blurring."""
        self.entry = entry
        self.setPixmap(
            QPixmap.fromImage(image).scaled(
                self.side,
                self.side,
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.FastTransformation,
            )
        )
        self.setCursor(Qt.CursorShape.OpenHandCursor if entry else Qt.CursorShape.ArrowCursor)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        if self.entry is not None:
            self.opened.emit(self.entry)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self._press = event.position().toPoint()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        moved = event.position().toPoint() - (self._press or event.position().toPoint())
        if self.entry is None or moved.manhattanLength() < QApplication.startDragDistance():
            return
        drag = QDrag(self)
        drag.setMimeData(self.drag_data())
        drag.setPixmap(self.pixmap().scaled(64, 64))
        drag.exec(Qt.DropAction.CopyAction)
        self._press = None

    def drag_data(self):
        assert self.entry is not None
        return image_mime_data([self.entry.path], [self.entry.request.prompt])
