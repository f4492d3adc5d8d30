"""EXIF texts: where A1111 (UserComment) and ComfyUI's WebP/JPEG savers (Make, Model,
ImageDescription: "prompt:{…}", "workflow:{…}") keep their metadata."""

from __future__ import annotations

from typing import Any

from PIL import ExifTags, Image

from studio.core.metadata import decode_user_comment
from studio.interop.entries import (
    IMAGE_DESCRIPTION,
    MAKE,
    MAX_TEXT_BYTES,
    MODEL,
    SOFTWARE,
    USER_COMMENT,
    Entries,
)

USER_COMMENT_TAG = 0x9286
MAKER_NOTE_TAG = 0x927C
STUDIO_PREFIX = b"Studio\0"  # our JSON's maker note (the core reads it)
# IFD0 text tags -> entry keys
TEXT_TAGS = {0x010E: IMAGE_DESCRIPTION, 0x010F: MAKE, 0x0110: MODEL, 0x0131: SOFTWARE}


def read(data: bytes, entries: Entries) -> None:
    """Add the texts of an EXIF block (with or without its "Exif\\0\\0" header)."""
    exif = Image.Exif()
    try:
        exif.load(data)
    except Exception:  # Pillow raises many types on damaged EXIF: no texts, no error
        return
    add(exif, entries)


def add(exif: Image.Exif, entries: Entries) -> None:
    """Add the texts of EXIF that Pillow has parsed; damaged parts are skipped."""
    try:
        ifd = exif.get_ifd(ExifTags.IFD.Exif)
    except Exception:
        ifd = {}
    comment = ifd.get(USER_COMMENT_TAG, _get(exif, USER_COMMENT_TAG))
    if isinstance(comment, bytes | str) and comment:
        cut = len(comment) > MAX_TEXT_BYTES
        entries.add(
            USER_COMMENT, decode_user_comment(comment[:MAX_TEXT_BYTES], exif.endian), cut=cut
        )
    note = ifd.get(MAKER_NOTE_TAG)
    if isinstance(note, bytes) and note.startswith(STUDIO_PREFIX):
        entries.has_studio = True
    for tag, key in TEXT_TAGS.items():
        value = _get(exif, tag)
        if isinstance(value, str | bytes) and value:
            entries.add(key, _text(value[:MAX_TEXT_BYTES]), cut=len(value) > MAX_TEXT_BYTES)


def _get(exif: Image.Exif, tag: int) -> Any:
    try:
        return exif.get(tag)
    except Exception:  # a damaged entry, read lazily
        return None


def _text(value: str | bytes) -> str:
    """An ASCII-typed tag's text. Pillow reads it as Latin-1; writers put UTF-8 there."""
    data = value.encode("latin-1", "replace") if isinstance(value, str) else value
    data = data.rstrip(b"\0")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")
