"""One candidate on the canvas: shows a preview, then a result; double-click opens it in
the viewer, dragging it out carries the file (as the gallery's items do), and its
context menu makes it the input picture."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QAction, QContextMenuEvent, QDrag, QImage, QMouseEvent, QPixmap
from PySide6.QtWidgets import QApplication, QLabel, QMenu, QWidget

from studio.core.history import HistoryEntry
from studio.ui.gallery_model import image_mime_data


class CandidateTile(QLabel):
    opened = Signal(object)  # HistoryEntry
    use_as_input = Signal(object)  # HistoryEntry
    vary = Signal(object)  # HistoryEntry: same prompt, this image as input, new seeds

    def __init__(self, side: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.side = side
        self.entry: HistoryEntry | None = None
        self._press: QPoint | None = None
        self._image: QImage | None = None  # what is shown, kept for a change of size
        # A frame outside the image, so a white picture still shows where it ends.
        self.setFixedSize(side + 2, side + 2)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setStyleSheet("background: palette(base); border: 1px solid palette(mid);")
        self.use_input_action = QAction("Use as input", self)
        self.use_input_action.triggered.connect(lambda: self._emit(self.use_as_input))
        self.vary_action = QAction("Vary", self)
        self.vary_action.triggered.connect(lambda: self._emit(self.vary))
        self.open_action = QAction("Open in viewer", self)
        self.open_action.triggered.connect(lambda: self._emit(self.opened))

    def show_image(self, image: QImage, entry: HistoryEntry | None = None) -> None:
        """A preview (no entry yet) or a result. Pixel art: enlarged without blurring."""
        self.entry = entry
        self._image = image
        self.setPixmap(
            QPixmap.fromImage(image).scaled(
                self.side,
                self.side,
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.FastTransformation,
            )
        )
        self.setCursor(Qt.CursorShape.OpenHandCursor if entry else Qt.CursorShape.ArrowCursor)

    def set_side(self, side: int) -> None:
        """Smaller beside an input picture, larger without one."""
        if side == self.side:
            return
        self.side = side
        self.setFixedSize(side + 2, side + 2)
        if self._image is not None:
            self.show_image(self._image, self.entry)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        if self.entry is not None:
            self.opened.emit(self.entry)

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:
        if self.entry is not None:
            QMenu.exec(
                [self.use_input_action, self.vary_action, self.open_action],
                event.globalPos(),
                None,
                self,
            )

    def _emit(self, signal) -> None:
        if self.entry is not None:
            signal.emit(self.entry)

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
