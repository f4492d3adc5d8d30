"""The input picture, large, with the mask painted over it.

The picture is shown from a pixmap of at most `WORK_SIDE` pixels a side, made once when
the picture comes in; the mask (`MaskLayer`) is painted at that same resolution. A
mouse move repaints only the rectangle it changed (and the brush outline), never the
whole photo. Tools: brush and eraser (size with [ and ], hardness), rectangle and lasso
fills; the right button erases with any tool. Ctrl+Z / Ctrl+Shift+Z undo and redo.
"""

from __future__ import annotations

from enum import Enum

from PySide6.QtCore import QPointF, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QImage,
    QKeyEvent,
    QKeySequence,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QPixmap,
    QPolygonF,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from studio.ui.mask_layer import MaskLayer

WORK_SIDE = 1536  # the shown picture and the painted mask: at most this a side
MIN_BRUSH, MAX_BRUSH = 2, 400  # brush diameter on screen, in pixels
BRUSH_STEP = 1.25  # [ and ] shrink and grow the brush by this factor
MASK_OPACITY = 0.5


class Tool(Enum):
    BRUSH = "brush"
    ERASER = "eraser"
    RECT = "rect"
    LASSO = "lasso"


class PictureCanvas(QWidget):
    mask_changed = Signal()  # after each edit (a stroke, a fill, undo…): not per move
    brush_changed = Signal(int)  # the brush's diameter on screen

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.pixmap: QPixmap | None = None
        self.mask: MaskLayer | None = None
        self.picture_size = QSize()  # the picture's own size (the mask sent has it)
        self.tool = Tool.BRUSH
        self.brush_size = 40
        self.hardness = 0.8
        self.mask_visible = True
        self._hover: QPointF | None = None
        self._drag: list[QPointF] = []  # a rect's corners or a lasso's points, in widget
        self._erasing = False
        self.setMouseTracking(True)  # the brush outline follows the pointer
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(160, 120)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)

    def set_picture(self, shown: QImage | None, picture_size: QSize | None = None) -> None:
        """Show `shown` (the picture at working size) with an empty mask of its size;
        `picture_size`: the picture's own size. None: no picture."""
        self.pixmap = QPixmap.fromImage(shown) if shown is not None else None
        self.mask = MaskLayer(shown.size()) if shown is not None else None
        self.picture_size = picture_size or (shown.size() if shown is not None else QSize())
        self._drag = []
        self.update()
        self.mask_changed.emit()

    # -- geometry: widget <-> mask <-> picture ---------------------------------------

    def target(self) -> QRectF:
        """Where the picture is drawn: fitted in the widget, centred."""
        if self.pixmap is None:
            return QRectF()
        size = QSize(self.pixmap.size()).scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio)
        x, y = (self.width() - size.width()) / 2, (self.height() - size.height()) / 2
        return QRectF(x, y, size.width(), size.height())

    def scale(self) -> float:
        """Screen pixels per mask pixel."""
        if self.pixmap is None or self.pixmap.width() == 0:
            return 1.0
        return self.target().width() / self.pixmap.width()

    def to_mask(self, point: QPointF) -> QPointF:
        return (point - self.target().topLeft()) / self.scale()

    def to_widget(self, rect: QRectF | QRect) -> QRect:
        scale, origin = self.scale(), self.target().topLeft()
        r = QRectF(rect)
        shown = QRectF(origin + r.topLeft() * scale, r.size() * scale)
        return shown.toAlignedRect().adjusted(-2, -2, 2, 2)

    def to_picture(self, point: QPointF) -> tuple[int, int]:
        """The picture pixel under a widget point (for tests and the status)."""
        at = self.to_mask(point)
        assert self.mask is not None
        sx = self.picture_size.width() / self.mask.size().width()
        sy = self.picture_size.height() / self.mask.size().height()
        return int(at.x() * sx), int(at.y() * sy)

    # -- painting --------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setClipRect(event.rect())
        painter.fillRect(event.rect(), self.palette().dark())
        if self.pixmap is None or self.mask is None:
            return
        target = self.target()
        shrinking = target.width() < self.pixmap.width()
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, shrinking)
        painter.drawPixmap(target, self.pixmap, QRectF(self.pixmap.rect()))
        if self.mask_visible:
            painter.setOpacity(MASK_OPACITY)
            painter.drawImage(target, self.mask.image, QRectF(self.mask.image.rect()))
            painter.setOpacity(1.0)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        for colour, width in ((QColor(0, 0, 0, 160), 3), (QColor(255, 255, 255), 1)):
            painter.setPen(QPen(colour, width))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            self._draw_outline(painter)

    def _draw_outline(self, painter: QPainter) -> None:
        """The brush circle under the pointer, or the rectangle or lasso being drawn."""
        if self._drag and self.tool is Tool.RECT:
            painter.drawRect(QRectF(self._drag[0], self._drag[-1]).normalized())
        elif self._drag and self.tool is Tool.LASSO:
            painter.drawPolyline(QPolygonF(self._drag))
        elif self._hover is not None and self.tool in (Tool.BRUSH, Tool.ERASER):
            r = self.brush_size / 2
            painter.drawEllipse(self._hover, r, r)

    def _outline_rect(self) -> QRect:
        if self._drag:
            return QPolygonF(self._drag).boundingRect().toAlignedRect().adjusted(-3, -3, 3, 3)
        if self._hover is None:
            return QRect()
        r = self.brush_size / 2 + 3
        return QRectF(self._hover.x() - r, self._hover.y() - r, 2 * r, 2 * r).toAlignedRect()

    # -- mouse -----------------------------------------------------------------------

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if self.mask is None or event.button() not in (
            Qt.MouseButton.LeftButton,
            Qt.MouseButton.RightButton,
        ):
            return
        at = event.position()
        self._erasing = event.button() == Qt.MouseButton.RightButton or self.tool is Tool.ERASER
        if self.tool in (Tool.BRUSH, Tool.ERASER):
            radius = self.brush_size / 2 / self.scale()
            changed = self.mask.begin_stroke(self.to_mask(at), radius, self.hardness, self._erasing)
            self.update(self.to_widget(changed))
        else:
            self._drag = [at]
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        at = event.position()
        old = self._outline_rect()
        self._hover = at
        if self.mask is not None and self.mask.painting:
            self.update(self.to_widget(self.mask.extend_stroke(self.to_mask(at))))
        elif self._drag and self.tool is Tool.RECT:
            self._drag = [self._drag[0], at]
        elif self._drag:
            self._drag.append(at)
        self.update(old | self._outline_rect())

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self.mask is None:
            return
        outline = self._outline_rect()
        if self.mask.painting:
            self.mask.end_stroke()
        elif self._drag:
            points = [self.to_mask(p) for p in [*self._drag, event.position()]]
            if self.tool is Tool.RECT:
                changed = self.mask.fill_rect(QRectF(points[0], points[-1]), self._erasing)
            else:
                changed = self.mask.fill_polygon(QPolygonF(points), self._erasing)
            self._drag = []
            self.update(self.to_widget(changed))
        else:
            return
        self.update(outline)
        self.mask_changed.emit()

    def leaveEvent(self, event) -> None:
        old, self._hover = self._outline_rect(), None
        self.update(old)

    # -- keys and commands -----------------------------------------------------------

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.text() == "[":
            self.set_brush_size(round(self.brush_size / BRUSH_STEP))
        elif event.text() == "]":
            self.set_brush_size(round(self.brush_size * BRUSH_STEP))
        elif event.matches(QKeySequence.StandardKey.Redo) or _is_ctrl_shift_z(event):
            self.redo()
        elif event.matches(QKeySequence.StandardKey.Undo):
            self.undo()
        else:
            super().keyPressEvent(event)

    def set_brush_size(self, size: int) -> None:
        size = max(MIN_BRUSH, min(MAX_BRUSH, size))
        if size == self.brush_size:
            return
        old = self._outline_rect()
        self.brush_size = size
        self.update(old | self._outline_rect())
        self.brush_changed.emit(size)

    def set_mask_visible(self, visible: bool) -> None:
        self.mask_visible = visible
        self.update()

    def undo(self) -> None:
        self._apply(lambda mask: mask.undo())

    def redo(self) -> None:
        self._apply(lambda mask: mask.redo())

    def invert(self) -> None:
        self._apply(lambda mask: mask.invert())

    def clear_mask(self) -> None:
        self._apply(lambda mask: mask.clear())

    def _apply(self, change) -> None:
        if self.mask is None:
            return
        changed = change(self.mask)
        if not changed.isEmpty():
            self.update(self.to_widget(changed))
            self.mask_changed.emit()


def _is_ctrl_shift_z(event: QKeyEvent) -> bool:
    """Ctrl+Shift+Z redoes everywhere (some platforms' Redo is Ctrl+Y only)."""
    ctrl_shift = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
    return event.key() == Qt.Key.Key_Z and event.modifiers() == ctrl_shift
