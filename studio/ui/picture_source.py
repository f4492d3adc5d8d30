"""Where an input picture comes from (a dropped or pasted file, pasted pixels), and
reading it off the GUI thread: stored by the core (which checks it), and shrunk once to
the size it is shown and painted on.

Pixels pasted from another program arrive encoded (a 4000 x 3000 PNG takes ~170 ms to
decode): they are taken as bytes and decoded with the rest, off the GUI thread."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QMimeData, QSize, Qt
from PySide6.QtGui import QImage, QImageReader, QPainter

from studio.core.app import Core
from studio.core.inputs import InputError, InputPicture
from studio.ui.canvas import WORK_SIDE
from studio.ui.drops import dropped_file

PICTURE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}

Source = Path | QImage | bytes  # bytes: an encoded picture (pasted PNG, JPEG…)
# What other programs put on the clipboard, best first; Qt decodes any of them.
ENCODED_TYPES = ("image/png", "image/jpeg", "image/webp", "image/bmp", "image/gif", "image/tiff")


@dataclass(frozen=True)
class LoadedPicture:
    """An input picture, ready: its name, its own size, what is shown, what is sent."""

    name: str
    size: QSize
    shown: QImage  # at most WORK_SIDE a side: what the canvas shows and the mask's size
    stored: InputPicture


def picture_in(data: QMimeData) -> Source | None:
    """The picture a drop or a paste carries: one local image file, or image data."""
    path = dropped_file(data, PICTURE_SUFFIXES)
    if path is not None:
        return path
    for kind in ENCODED_TYPES:  # another program's pixels: decoded later, not here
        if data.hasFormat(kind):
            encoded = data.data(kind).data()
            if encoded:
                return encoded
    if data.hasImage():  # this app's own (a QImage already): nothing to decode
        image = QImage(data.imageData())
        return image if not image.isNull() else None
    return None


def load_picture(core: Core, source: Source) -> LoadedPicture:
    """Store `source` as an input (the core normalises it, or says why it cannot be
    used) and make its shown copy. Slow for a photo: never on the GUI thread."""
    if isinstance(source, Path):
        stored = core.add_input(source)
        reader = QImageReader(str(source))
        reader.setAutoTransform(True)  # EXIF orientation, as the core applies it
        image = reader.read()
        if image.isNull():
            raise InputError(f"{source.name} cannot be read: {reader.errorString()}")
        name = source.name
    elif isinstance(source, bytes):
        stored = core.add_input(source)
        image, name = _decode(source), "pasted picture"
    else:
        image, name = source, "pasted picture"
        stored = core.add_input(to_pil(source))
    size = image.size()
    shown = image
    if max(size.width(), size.height()) > WORK_SIDE:
        shown = image.scaled(
            WORK_SIDE,
            WORK_SIDE,
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
    return LoadedPicture(name, size, _on_white(shown), stored)


def _decode(encoded: bytes) -> QImage:
    buffer = QBuffer()
    buffer.setData(QByteArray(encoded))
    buffer.open(QIODevice.OpenModeFlag.ReadOnly)
    reader = QImageReader(buffer)
    reader.setAutoTransform(True)  # EXIF orientation, as the core applies it
    image = reader.read()
    if image.isNull():
        raise InputError(f"the pasted picture cannot be read: {reader.errorString()}")
    return image


def _on_white(image: QImage) -> QImage:
    """Opaque, transparency onto white: as the core flattens what it stores."""
    if not image.hasAlphaChannel():
        return image.convertToFormat(QImage.Format.Format_RGB32)
    flat = QImage(image.size(), QImage.Format.Format_RGB32)
    flat.fill(Qt.GlobalColor.white)
    painter = QPainter(flat)
    painter.drawImage(0, 0, image)
    painter.end()
    return flat


def to_pil(image: QImage) -> Image.Image:
    """A QImage's pixels as a Pillow image (RGBA, so transparency is kept for the core)."""
    rgba = image.convertToFormat(QImage.Format.Format_RGBA8888)
    size = (rgba.width(), rgba.height())
    data = bytes(rgba.constBits())
    return Image.frombuffer("RGBA", size, data, "raw", "RGBA", rgba.bytesPerLine(), 1).copy()
