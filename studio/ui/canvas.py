"""The input picture, large, with the mask painted over it.

The picture is shown from a pixmap of at most `WORK_SIDE` pixels a side, made once when
the picture comes in; the mask (`MaskLayer`) is painted at that same resolution. A
mouse move repaints only the rectangle it changed (and the brush outline), never the
whole photo. Tools: brush and eraser (size with [ and ], hardness), rectangle and lasso
fills; the right button erases with any tool. Ctrl+Z / Ctrl+Shift+Z undo and redo.

Zoom and pan as in the viewer: Ctrl+wheel zooms about the pointer, Ctrl+plus / Ctrl+minus
zoom, Ctrl+0 fits, Ctrl+1 shows the picture's own pixels 1:1; the middle button, or Space
with the left button, drags the picture (the wheel scrolls it). The mask keeps its working
resolution at any zoom: only the mapping between the widget and the mask changes.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from PySide6.QtCore import QPointF, QRect, QRectF, QSize, QSizeF, Qt, Signal
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
    QWheelEvent,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from studio.ui.mask_layer import MaskLayer

WORK_SIDE = 1536  # the shown picture and the painted mask: at most this a side
MIN_BRUSH, MAX_BRUSH = 2, 400  # brush diameter on screen, in pixels
BRUSH_STEP = 1.25  # [ and ] shrink and grow the brush by this factor
MASK_OPACITY = 0.5
ZOOM_STEP = 1.25  # the viewer's
MAX_ZOOM = 32.0  # screen pixels per picture pixel, at most
WHEEL_PAN = 0.5  # screen pixels scrolled per eighth of a degree of the wheel


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
        self.zoom: float | None = None  # screen px per picture px; None: fit the widget
        self._origin = QPointF()  # where the picture's top left is drawn, when zoomed
        self._pan_from: QPointF | None = None  # the pointer where a pan drag last was
        self._space = False  # Space held: the left button pans
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
        self.zoom = None  # a new picture starts fitted
        self.update()
        self.mask_changed.emit()

    # -- geometry: widget <-> mask <-> picture ---------------------------------------

    def target(self) -> QRectF:
        """Where the picture is drawn: fitted in the widget and centred, or at the zoom;
        a side smaller than the widget is centred, a larger one covers it (no empty
        margin can be dragged in)."""
        if self.pixmap is None:
            return QRectF()
        if self.zoom is None:
            size = QSizeF(self.pixmap.size()).scaled(
                QSizeF(self.size()), Qt.AspectRatioMode.KeepAspectRatio
            )
            x, y = (self.width() - size.width()) / 2, (self.height() - size.height()) / 2
            return QRectF(x, y, size.width(), size.height())
        size = QSizeF(self.picture_size) * self.zoom
        x = _place(self._origin.x(), size.width(), self.width())
        y = _place(self._origin.y(), size.height(), self.height())
        return QRectF(x, y, size.width(), size.height())

    def fit_zoom(self) -> float:
        """The zoom (screen px per picture px) that fits the picture in the widget."""
        if self.pixmap is None or self.picture_size.isEmpty():
            return 1.0
        zoom = self.zoom
        self.zoom = None
        fitted = self.target().width() / self.picture_size.width()
        self.zoom = zoom
        return fitted

    def current_zoom(self) -> float:
        return self.fit_zoom() if self.zoom is None else self.zoom

    def set_zoom(self, zoom: float | None, about: QPointF | None = None) -> None:
        """Zoom to `zoom` (None: fit), keeping the picture point under `about` (a widget
        point; the widget's centre by default) where it is."""
        if self.pixmap is None:
            return
        if zoom is not None:
            low = min(self.fit_zoom(), 1.0) / 4  # some way below fit, as the viewer allows
            zoom = max(low, min(MAX_ZOOM, zoom))
            about = QPointF(self.rect().center()) if about is None else about
            at = self.to_mask(about)  # mask pixels, unchanged by the zoom
            self.zoom = zoom
            self._origin = about - at * self.scale()
            self._origin = self.target().topLeft()  # clamped, so a later pan starts there
        else:
            self.zoom = None
        self.update()

    def zoom_by(self, factor: float, about: QPointF | None = None) -> None:
        self.set_zoom(self.current_zoom() * factor, about)

    def fit(self) -> None:
        self.set_zoom(None)

    def actual_size(self) -> None:
        self.set_zoom(1.0)

    def zoom_in(self) -> None:
        self.zoom_by(ZOOM_STEP, self._hover)

    def zoom_out(self) -> None:
        self.zoom_by(1 / ZOOM_STEP, self._hover)

    def pan_by(self, delta: QPointF) -> None:
        if self.pixmap is None or self.zoom is None:
            return  # fitted, the whole picture is in view: nothing to pan to
        before = self.target().topLeft()
        self._origin = before + delta
        self._origin = self.target().topLeft()
        if self._origin != before:
            self.update()

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
        # Only the mask pixels under the dirty rectangle are drawn: zoomed in, the whole
        # picture would be tens of thousands of screen pixels wide.
        source = self._source_rect(QRectF(event.rect()))
        if not source.isEmpty():
            scale, origin = self.scale(), self.target().topLeft()
            target = QRectF(origin + source.topLeft() * scale, source.size() * scale)
            shrinking = scale < 1.0
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, shrinking)
            painter.drawPixmap(target, self.pixmap, source)
            if self.mask_visible:
                painter.setOpacity(MASK_OPACITY)
                painter.drawImage(target, self.mask.image, source)
                painter.setOpacity(1.0)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        for colour, width in ((QColor(0, 0, 0, 160), 3), (QColor(255, 255, 255), 1)):
            painter.setPen(QPen(colour, width))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            self._draw_outline(painter)

    def _source_rect(self, shown: QRectF) -> QRectF:
        """The whole mask pixels under a widget rectangle (within the picture)."""
        assert self.pixmap is not None
        top_left = self.to_mask(shown.topLeft())
        bottom_right = self.to_mask(shown.bottomRight())
        whole = QRectF(top_left, bottom_right).toAlignedRect().adjusted(-1, -1, 1, 1)
        return QRectF(whole & self.pixmap.rect())

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
        middle = event.button() == Qt.MouseButton.MiddleButton
        space_left = self._space and event.button() == Qt.MouseButton.LeftButton
        if self.pixmap is not None and (middle or space_left) and not self._busy():
            self._pan_from = event.position()
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
            event.accept()
            return
        if (
            self._pan_from is not None
            or self.mask is None
            or event.button()
            not in (
                Qt.MouseButton.LeftButton,
                Qt.MouseButton.RightButton,
            )
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
        if self._pan_from is not None:
            self._hover = at  # the outline moves with the pointer over the whole repaint
            self.pan_by(at - self._pan_from)
            self._pan_from = at
            return
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
        if self._pan_from is not None:
            if event.buttons() & (Qt.MouseButton.MiddleButton | Qt.MouseButton.LeftButton):
                return  # the other pan button is still down
            self._pan_from = None
            self._show_pan_cursor()
            return
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

    def wheelEvent(self, event: QWheelEvent) -> None:
        if self.pixmap is None:
            return super().wheelEvent(event)
        delta = event.angleDelta()
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            if delta.y():  # a step a notch (120); touchpads and fine wheels send less
                self.zoom_by(ZOOM_STEP ** (delta.y() / 120), event.position())
        elif self.zoom is not None:  # zoomed: the wheel scrolls (Shift: sideways)
            dx, dy = delta.x() * WHEEL_PAN, delta.y() * WHEEL_PAN
            if event.modifiers() & Qt.KeyboardModifier.ShiftModifier and not dx:
                dx, dy = dy, 0.0
            self.pan_by(QPointF(dx, dy))
        event.accept()

    def _busy(self) -> bool:
        """A stroke or a fill is under way: panning waits for it."""
        return bool(self._drag) or (self.mask is not None and self.mask.painting)

    def _show_pan_cursor(self) -> None:
        if self._pan_from is not None:
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
        elif self._space:
            self.setCursor(Qt.CursorShape.OpenHandCursor)
        else:
            self.unsetCursor()

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
        elif event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = True
            self._show_pan_cursor()
        elif (command := self._zoom_command(event)) is not None:
            command()
        else:
            super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = False
            self._show_pan_cursor()
        else:
            super().keyReleaseEvent(event)

    def _zoom_command(self, event: QKeyEvent) -> Callable[[], None] | None:
        """What a zoom key asks for (the viewer's keys), or None for other keys."""
        if event.matches(QKeySequence.StandardKey.ZoomIn):
            return self.zoom_in
        if event.matches(QKeySequence.StandardKey.ZoomOut):
            return self.zoom_out
        if not event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            return None
        # Ctrl+= is Ctrl+plus without Shift on most layouts; 0 and 1 also on the keypad
        return {
            Qt.Key.Key_Equal: self.zoom_in,
            Qt.Key.Key_Plus: self.zoom_in,
            Qt.Key.Key_Minus: self.zoom_out,
            Qt.Key.Key_0: self.fit,
            Qt.Key.Key_1: self.actual_size,
        }.get(Qt.Key(event.key()))

    def focusOutEvent(self, event) -> None:
        self._space = False  # its release goes elsewhere
        self._show_pan_cursor()
        super().focusOutEvent(event)

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


def _place(origin: float, length: float, room: float) -> float:
    """Where a side of `length` starts in `room`: centred when it fits, else kept
    covering the room (dragging stops at the picture's edge)."""
    if length <= room:
        return (room - length) / 2
    return min(0.0, max(room - length, origin))


def _is_ctrl_shift_z(event: QKeyEvent) -> bool:
    """Ctrl+Shift+Z redoes everywhere (some platforms' Redo is Ctrl+Y only)."""
    ctrl_shift = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
    return event.key() == Qt.Key.Key_Z and event.modifiers() == ctrl_shift
