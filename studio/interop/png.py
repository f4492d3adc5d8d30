"""PNG metadata: text chunks and eXIf, read by walking the chunks, never the pixels.

Every chunk's length is checked against the file's size first, so a file cut short is
reported as such (a damaged file, not one without metadata), and a huge declared length
costs nothing. Text is capped per chunk and in total; compressed text stops inflating at
the cap (zip bombs). tEXt and zTXt are Latin-1 by the standard, but tools write UTF-8
there too: text that is valid UTF-8 is read as UTF-8 (Latin-1 text outside ASCII almost
never is).
"""

from __future__ import annotations

import struct
import zlib
from typing import BinaryIO

from studio.core.metadata import MetadataError
from studio.core.metadata_files import png_header
from studio.interop import exif
from studio.interop.entries import MAX_TEXT_BYTES, MAX_TOTAL_TEXT, Entries

SIGNATURE = b"\x89PNG\r\n\x1a\n"
TEXT_CHUNKS = {b"tEXt", b"zTXt", b"iTXt"}
MAX_CHUNKS = 100_000  # walked per file (pixel data in 8 KiB chunks: ~800 MiB)


def read(fp: BinaryIO, entries: Entries) -> tuple[int, int, int]:
    """Add the PNG's texts to `entries`; its width, height and colour type.

    `fp` is just past the signature. Raises `MetadataError` for a damaged header, a
    decompression bomb, or a file cut short.
    """
    width, height, color_type = png_header(fp, entries.name)
    here = fp.tell()
    size = fp.seek(0, 2)
    fp.seek(here)
    budget = MAX_TOTAL_TEXT
    from_exif = Entries(entries.name)  # text chunks win over the same keys in eXIf
    for _ in range(MAX_CHUNKS):
        head = fp.read(8)
        if len(head) < 8:
            raise MetadataError(f"{entries.name} is cut short: it ends before its last chunk")
        length, kind = struct.unpack(">I4s", head)
        if kind == b"IEND":
            break
        end = fp.tell() + length + 4  # data, then CRC
        if end > size:
            raise MetadataError(
                f"{entries.name} is cut short: its {_shown(kind)} chunk runs past the end of "
                "the file"
            )
        if (kind in TEXT_CHUNKS or kind == b"eXIf") and budget > 0:
            data = fp.read(min(length, MAX_TEXT_BYTES, budget))
            budget -= len(data)
            if kind == b"eXIf":
                exif.read(data, from_exif)
            else:
                budget -= _add_text(kind, data, length > len(data), entries)
        fp.seek(end)
    for key, text in from_exif.texts.items():
        entries.add(key, text)
    for key, text in from_exif.cut.items():
        entries.add(key, text, cut=True)
    entries.has_studio = entries.has_studio or from_exif.has_studio or "studio" in entries.texts
    return width, height, color_type


def _add_text(kind: bytes, data: bytes, cut: bool, entries: Entries) -> int:
    """Add one text chunk's text; the characters it inflated to (for the budget)."""
    key, _, rest = data.partition(b"\0")
    if not key or len(key) > 79:  # the standard's limit: longer is damage
        return 0
    if kind == b"tEXt":
        text = decode_text(rest)
    elif kind == b"zTXt":
        body, more = _inflate(rest[1:])
        text, cut = decode_text(body), cut or more
    else:  # iTXt: flag, method, language\0, translated key\0, text
        compressed, rest = rest[:1] == b"\1", rest[2:]
        body = rest.split(b"\0", 2)[-1] if rest.count(b"\0") >= 2 else b""
        if compressed:
            body, more = _inflate(body)
            cut = cut or more
        text = body.decode("utf-8", "replace")
    entries.add(key.decode("latin-1"), text, cut=cut)
    return len(text) if kind != b"tEXt" else 0


def decode_text(data: bytes) -> str:
    """UTF-8 when the bytes are valid UTF-8, else Latin-1 (never raises)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _inflate(data: bytes) -> tuple[bytes, bool]:
    """At most MAX_TEXT_BYTES inflated, and whether there was more; b"" when damaged."""
    inflater = zlib.decompressobj()
    try:
        body = inflater.decompress(data, MAX_TEXT_BYTES)
    except zlib.error:
        return b"", False
    return body, bool(inflater.unconsumed_tail)


def _shown(kind: bytes) -> str:
    return kind.decode("latin-1") if kind.isalpha() else repr(kind)
