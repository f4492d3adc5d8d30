"""Finding the metadata texts in an image file: PNG and WebP by walking their chunks, JPEG
and other formats through Pillow's lazy open (headers only, bomb guard on)."""

from __future__ import annotations

import contextlib
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

from studio.core.metadata import MetadataError
from studio.interop import exif, png, stealth, webp
from studio.interop.entries import JPEG_COMMENT, MAX_TEXT_BYTES, Entries
from studio.interop.png import decode_text

STUDIO_PREFIX = exif.STUDIO_PREFIX  # also starts the comments our JPEGs keep JSON in


def read_entries(fp: BinaryIO, name: str) -> Entries:
    """Every metadata text of the image in `fp` (read from its start).

    Raises `MetadataError` when `fp` is not an image, is damaged or is a decompression bomb.
    """
    entries = Entries(name)
    fp.seek(0)
    head = fp.read(12)
    if head[:8] == png.SIGNATURE:
        fp.seek(8)
        width, height, color_type = png.read(fp, entries)
        entries.hidden = stealth.reader(fp, width, height, color_type)
    elif webp.is_webp(head):
        webp.read(fp, entries)
    else:
        _read_with_pillow(fp, entries)
    return entries


def _read_with_pillow(fp: BinaryIO, entries: Entries) -> None:
    fp.seek(0)
    try:
        with Image.open(fp) as image:  # lazy: reads headers, not pixels
            with contextlib.suppress(Exception):  # damaged EXIF: bad metadata, not image
                exif.add(image.getexif(), entries)
            _add_comment(getattr(image, "applist", []), entries)
    except Image.DecompressionBombError as exc:
        raise MetadataError(f"{entries.name} is too large to open safely: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise MetadataError(f"{entries.name} is not an image Studio can read") from exc
    except Exception as exc:  # a recognised format whose headers are damaged
        raise MetadataError(f"{entries.name} could not be read as an image: {exc}") from exc


def _add_comment(applist: list[tuple[str, bytes]], entries: Entries) -> None:
    """A JPEG's comment (COM) text: the last one, as Pillow and A1111 take it, leaving out
    the comments that hold Studio's own JSON."""
    comments = [data for marker, data in applist if marker == "COM" and isinstance(data, bytes)]
    if any(data.startswith(STUDIO_PREFIX) for data in comments):
        entries.has_studio = True
    texts = [data for data in comments if not data.startswith(STUDIO_PREFIX) and data.strip()]
    if texts:
        text = texts[-1]
        entries.add(JPEG_COMMENT, decode_text(text[:MAX_TEXT_BYTES]).rstrip("\0"))
