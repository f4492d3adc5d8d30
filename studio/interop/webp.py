"""WebP metadata: the RIFF chunks walked by hand, so that no canvas is allocated (libwebp's
decoder makes one as it opens a file, whatever size its header claims)."""

from __future__ import annotations

import struct
from typing import BinaryIO

from studio.core.metadata import MetadataError
from studio.interop import exif
from studio.interop.entries import MAX_TEXT_BYTES, Entries

IMAGE_CHUNKS = {b"VP8 ", b"VP8L", b"VP8X"}
MAX_CHUNKS = 10_000


def is_webp(head: bytes) -> bool:
    return head[:4] == b"RIFF" and head[8:12] == b"WEBP"


def read(fp: BinaryIO, entries: Entries) -> None:
    """Add the EXIF texts of a WebP file; `fp` is at its start."""
    fp.seek(12)
    first = True
    for _ in range(MAX_CHUNKS):
        head = fp.read(8)
        if len(head) < 8:
            break
        kind, length = head[:4], struct.unpack("<I", head[4:])[0]
        if first and kind not in IMAGE_CHUNKS:
            raise MetadataError(f"{entries.name} is not a readable WebP image")
        first = False
        if kind == b"EXIF":
            data = fp.read(min(length, MAX_TEXT_BYTES))
            exif.read(data, entries)
        fp.seek(length + (length & 1), 1)  # chunks are padded to even lengths
    if first:
        raise MetadataError(f"{entries.name} is not a readable WebP image (no image data)")
