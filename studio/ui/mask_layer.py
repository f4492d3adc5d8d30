"""The mask as it is painted: an overlay the size of the picture on screen, with undo.

Painting happens at the displayed resolution (a photo of 4000 x 3000 is painted on an
image of about 1536 x 1152), so a brush stroke touches a few thousand pixels, not
millions. The mask the backend gets, the picture's own size, is made from it only when
a request is sent (`full_size`). The overlay's alpha is the mask (255 = repaint); its
colour is only how it is shown.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image
from PySide6.QtCore import QPointF, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QBrush, QColor, QImage, QPainter, QPolygonF, QRadialGradient

MASK_COLOUR = QColor(255, 32, 96)
MAX_UNDO = 100  # edits kept; each holds only the pixels it changed, before and after
SPACING = 0.25  # brush stamps along a stroke, in radii: dense enough for no beads


@dataclass(frozen=True)
class Edit:
    """One undoable change: the pixels of `rect` before and after it."""

    rect: QRect
    before: QImage
    after: QImage


class MaskLayer:
    """A mask painted with brush, eraser and fills; every change can be undone exactly."""

    def __init__(self, size: QSize) -> None:
        self.image = QImage(size, QImage.Format.Format_ARGB32_Premultiplied)
        self.image.fill(Qt.GlobalColor.transparent)
        self.version = 0  # counts changes: what was made from the mask can be reused
        self._undo: list[Edit] = []
        self._redo: list[Edit] = []
        self._stroke: _Stroke | None = None

    def size(self) -> QSize:
        return self.image.size()

    def bounds(self) -> QRect:
        return self.image.rect()

    # -- strokes: press, moves, release ----------------------------------------------

    def begin_stroke(
        self, at: QPointF, radius: float, hardness: float, erase: bool = False
    ) -> QRect:
        """Start a brush (or eraser) stroke with one stamp; returns the rect it changed."""
        self._stroke = _Stroke(self.image.copy(), at, max(0.5, radius), hardness, erase)
        return self._stamp([at])

    def extend_stroke(self, to: QPointF) -> QRect:
        """Continue the stroke to `to`: stamps along the segment; returns what changed."""
        stroke = self._stroke
        if stroke is None:
            return QRect()
        start = stroke.last
        length = math.hypot(to.x() - start.x(), to.y() - start.y())
        steps = max(1, math.ceil(length / max(0.5, stroke.radius * SPACING)))
        points = [start + (to - start) * (i / steps) for i in range(1, steps + 1)]
        stroke.last = to
        return self._stamp(points)

    def end_stroke(self) -> QRect:
        """Finish the stroke (one undo step); returns the rect it changed."""
        stroke, self._stroke = self._stroke, None
        if stroke is None or stroke.dirty.isEmpty():
            return QRect()
        rect = stroke.dirty & self.bounds()
        self._push(Edit(rect, stroke.before.copy(rect), self.image.copy(rect)))
        return rect

    @property
    def painting(self) -> bool:
        return self._stroke is not None

    def _stamp(self, points: list[QPointF]) -> QRect:
        stroke = self._stroke
        assert stroke is not None
        r = stroke.radius
        painter = QPainter(self.image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        if stroke.erase:
            painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_DestinationOut)
        dirty = QRectF()
        for at in points:
            painter.setBrush(_brush(at, r, stroke.hardness))
            painter.drawEllipse(at, r, r)
            dirty |= QRectF(at.x() - r, at.y() - r, 2 * r, 2 * r)
        painter.end()
        changed = dirty.toAlignedRect().adjusted(-1, -1, 1, 1) & self.bounds()
        stroke.dirty |= changed
        self.version += 1
        return changed

    # -- fills, invert, clear --------------------------------------------------------

    def fill_rect(self, rect: QRectF, erase: bool = False) -> QRect:
        """Fill (or clear) a rectangle: one undo step; returns what changed."""
        return self._edit(
            rect.toAlignedRect(), lambda p: p.fillRect(rect.normalized(), MASK_COLOUR), erase
        )

    def fill_polygon(self, polygon: QPolygonF, erase: bool = False) -> QRect:
        """Fill (or clear) a lasso's outline: one undo step; returns what changed."""

        def fill(painter: QPainter) -> None:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(MASK_COLOUR)
            painter.drawPolygon(polygon)

        return self._edit(
            polygon.boundingRect().toAlignedRect().adjusted(-1, -1, 1, 1), fill, erase
        )

    def invert(self) -> QRect:
        """What was to be kept is repainted and the other way round."""
        old = self.image.copy()

        def invert(painter: QPainter) -> None:
            painter.fillRect(self.bounds(), MASK_COLOUR)
            painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_DestinationOut)
            painter.drawImage(0, 0, old)

        return self._edit(self.bounds(), invert)

    def clear(self) -> QRect:
        """Nothing to repaint (one undo step, unless it was empty already)."""
        if self.is_empty():
            return QRect()
        return self._edit(self.bounds(), lambda p: p.fillRect(self.bounds(), MASK_COLOUR), True)

    def _edit(self, rect: QRect, paint: Callable[[QPainter], None], erase: bool = False) -> QRect:
        rect = rect & self.bounds()
        if rect.isEmpty():
            return QRect()
        before = self.image.copy(rect)
        painter = QPainter(self.image)
        painter.setClipRect(rect)
        if erase:
            painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_DestinationOut)
        paint(painter)
        painter.end()
        self._push(Edit(rect, before, self.image.copy(rect)))
        self.version += 1
        return rect

    # -- undo ------------------------------------------------------------------------

    def can_undo(self) -> bool:
        return bool(self._undo)

    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self) -> QRect:
        """Put back the pixels of the last edit; returns what changed."""
        if not self._undo or self.painting:
            return QRect()
        edit = self._undo.pop()
        self._redo.append(edit)
        return self._put(edit.rect, edit.before)

    def redo(self) -> QRect:
        if not self._redo or self.painting:
            return QRect()
        edit = self._redo.pop()
        self._undo.append(edit)
        return self._put(edit.rect, edit.after)

    def _push(self, edit: Edit) -> None:
        self._undo = [*self._undo[-(MAX_UNDO - 1) :], edit]
        self._redo.clear()

    def _put(self, rect: QRect, pixels: QImage) -> QRect:
        painter = QPainter(self.image)
        painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_Source)
        painter.drawImage(rect.topLeft(), pixels)
        painter.end()
        self.version += 1
        return rect

    # -- what is sent ----------------------------------------------------------------

    def alpha_bytes(self) -> tuple[bytes, int]:
        """The mask at this resolution: 8-bit rows and their stride in bytes."""
        alpha = self.image.convertToFormat(QImage.Format.Format_Alpha8)
        return bytes(alpha.constBits()), alpha.bytesPerLine()

    def is_empty(self) -> bool:
        data, _ = self.alpha_bytes()
        return data.count(0) == len(data)  # counted in C: fast at any size

    def full_size(self, width: int, height: int) -> Image.Image:
        """The mask at the picture's size, as sent: 8-bit grey, white = repaint. Made
        here, when asked, by scaling the painted mask up (smoothly: soft edges stay)."""
        data, stride = self.alpha_bytes()
        size = (self.image.width(), self.image.height())
        painted = Image.frombuffer("L", size, data, "raw", "L", stride, 1)
        if size == (width, height):
            return painted.copy()
        return painted.resize((width, height), Image.Resampling.BILINEAR)


@dataclass
class _Stroke:
    before: QImage  # the whole mask when the stroke began: its undo step is cut from it
    last: QPointF
    radius: float
    hardness: float
    erase: bool
    dirty: QRect = field(default_factory=QRect)


def _brush(at: QPointF, radius: float, hardness: float) -> QBrush:
    """Full strength out to `hardness` of the radius, then fading to nothing."""
    if hardness >= 0.99:
        return QBrush(MASK_COLOUR)
    gradient = QRadialGradient(at, radius)
    clear = QColor(MASK_COLOUR)
    clear.setAlpha(0)
    gradient.setColorAt(0.0, MASK_COLOUR)
    gradient.setColorAt(max(0.0, hardness), MASK_COLOUR)
    gradient.setColorAt(1.0, clear)
    return QBrush(gradient)
