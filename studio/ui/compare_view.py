"""Before and after: the original picture over the result, left of a divider the user
drags, in the viewer's scene (so it shares the viewer's zoom, fit and pan).

The original is scaled to the result's size and aspect once, so both fill the same
rectangle whatever their sizes; dragging on the image moves the divider (dragging
outside it still pans).
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsSceneMouseEvent,
    QStyleOptionGraphicsItem,
    QWidget,
)

from studio.core.history import HistoryEntry
from studio.core.inputs import InputError, InputStore

DIVIDER_PEN = 2  # cosmetic pixels: the same on screen at any zoom
HANDLE_RADIUS = 7
MAX_ORIGINAL_SIDE = 2048


def original_of(inputs: InputStore, entry: HistoryEntry) -> QImage | None:
    """The input picture `entry` was made from, or None (made from text, or the picture
    is no longer stored)."""
    picture = entry.request.image
    if picture is None:
        return None
    try:
        data = inputs.get(picture.digest).data
    except InputError:
        return None
    image = QImage.fromData(data)
    return None if image.isNull() else image


class CompareItem(QGraphicsItem):
    """Drawn over the result (which fills `rect`): the original left of the divider."""

    def __init__(self, original: QImage, rect: QRectF) -> None:
        super().__init__()
        self.rect = QRectF(rect)
        if max(original.width(), original.height()) > MAX_ORIGINAL_SIDE:  # paints stay quick
            original = original.scaled(
                MAX_ORIGINAL_SIDE,
                MAX_ORIGINAL_SIDE,
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
        # Kept at its own resolution (a small result enlarged still shows the photo's
        # detail), stretched onto the result's rectangle when drawn: the pixels line up.
        self.original = QPixmap.fromImage(original)
        self.fraction = 0.5  # where the divider is, across the image
        self.setZValue(1)
        self.setCursor(Qt.CursorShape.SplitHCursor)
        self.setAcceptedMouseButtons(Qt.MouseButton.LeftButton)

    def divider_x(self) -> float:
        """The divider's x in scene (result pixel) coordinates."""
        return self.rect.left() + self.fraction * self.rect.width()

    def set_fraction(self, fraction: float) -> None:
        self.fraction = max(0.0, min(1.0, fraction))
        self.update()

    def boundingRect(self) -> QRectF:
        return self.rect

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        x = self.divider_x()
        shown = QRectF(self.rect.left(), self.rect.top(), x - self.rect.left(), self.rect.height())
        sx = self.original.width() / max(1.0, self.rect.width())
        sy = self.original.height() / max(1.0, self.rect.height())
        source = QRectF(0, 0, shown.width() * sx, self.rect.height() * sy)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)  # a photo
        painter.drawPixmap(shown, self.original, source)
        top, bottom = QPointF(x, self.rect.top()), QPointF(x, self.rect.bottom())
        for colour, width in (
            (QColor(40, 40, 40), DIVIDER_PEN + 2),
            (QColor(255, 255, 255), DIVIDER_PEN),
        ):
            pen = QPen(colour, width)  # white on a dark edge: seen on light walls and dark
            pen.setCosmetic(True)
            painter.setPen(pen)
            painter.drawLine(top, bottom)
        # A round handle mid-height, the same size on screen at any zoom.
        scale = painter.worldTransform().m11() or 1.0
        radius = HANDLE_RADIUS / scale
        painter.setBrush(QColor(255, 255, 255))
        outline = QPen(QColor(60, 60, 60), 1)
        outline.setCosmetic(True)
        painter.setPen(outline)
        painter.drawEllipse(QPointF(x, self.rect.center().y()), radius, radius)

    def mousePressEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        self._follow(event)

    def mouseMoveEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        self._follow(event)

    def _follow(self, event: QGraphicsSceneMouseEvent) -> None:
        event.accept()  # taken: the view does not pan while the divider is dragged
        if self.rect.width() > 0:
            self.set_fraction((event.pos().x() - self.rect.left()) / self.rect.width())
