"""Metadata inside image files: reading text out of untrusted files safely, writing EXIF.

- PNG text chunks (tEXt, zTXt, iTXt, and the text of an eXIf chunk) are read by a small
  chunk walker, not by Pillow: it caps each chunk and the total without changing Pillow's
  process-wide limits (readers run on several threads), skips the pixel data by seeking,
  and so also finds text stored after it. Only the IHDR chunk's CRC is checked.
- Other formats go through Pillow's lazy `Image.open`, decompression-bomb guard on.
- JPEG / WebP carry A1111's `parameters` text in EXIF UserComment, "UNICODE\\0" + UTF-16BE in
  a big-endian block as piexif writes it, and our JSON in the EXIF MakerNote after a
  "Studio\\0" prefix (maker notes start with their maker's name): viewers don't show it and
  other tools keep it as opaque bytes. A JPEG's EXIF block holds 64 KiB: when both don't
  fit, our JSON goes into comment (COM) segments instead, "Studio\\0" and a part each; a
  text too long for EXIF goes into a last comment of its own, where A1111 looks in a JPEG
  without EXIF (other readers find it nowhere: a warning says so).

Bad metadata never raises; a file that is not an image, or a bomb, raises `MetadataError`.
"""

from __future__ import annotations

import logging
import struct
import zlib
from typing import BinaryIO

from PIL import ExifTags, Image, UnidentifiedImageError

MAX_TEXT_BYTES = 1 << 20  # read per text chunk: big ComfyUI workflows still fit
MAX_TOTAL_TEXT = 8 << 20  # read across all text chunks of one file
MAX_PNG_CHUNKS = 100_000  # walked per file (pixel data in 8 KiB chunks: ~800 MiB)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_TEXT_CHUNKS = {b"tEXt", b"zTXt", b"iTXt"}
EXIF_IFD_POINTER = 0x8769
EXIF_VERSION = 0x9000
USER_COMMENT = 0x9286
MAKER_NOTE = 0x927C
LONG, UNDEFINED = 4, 7  # TIFF field types
MAKER_PREFIX = b"Studio\0"
UNICODE_PREFIX = b"UNICODE\0"
JPEG_EXIF_LIMIT = 65533  # one APP1 marker, "Exif\0\0" header included
JPEG_SEGMENT_LIMIT = 65533  # bytes of data in one JPEG marker segment (COM too)

log = logging.getLogger(__name__)


class MetadataError(ValueError):
    """The file is not an image Studio can open safely (not its metadata: that never raises)."""


def read_texts(fp: BinaryIO, name: str) -> dict[str, str]:
    """{key: text} of the metadata entries in the image file `fp` (read from its start).

    EXIF entries appear as "parameters" (UserComment) and "studio" (our MakerNote, or our
    comments in a JPEG whose EXIF could not hold it).
    `name` is only used in messages.
    """
    fp.seek(0)
    if fp.read(8) == PNG_SIGNATURE:
        return _png_texts(fp, name)
    return _pillow_texts(fp, name)


def exif_block(parameters: str, studio_json: str | None = None) -> bytes:
    """EXIF bytes with `parameters` as UserComment and `studio_json` (if any) as MakerNote."""
    tags = {EXIF_VERSION: b"0232", USER_COMMENT: encode_user_comment(parameters)}
    if studio_json is not None:
        tags[MAKER_NOTE] = MAKER_PREFIX + studio_json.encode("utf-8")
    return b"Exif\0\0" + _exif_tiff(tags)


def jpeg_metadata(parameters: str, studio_json: str) -> tuple[bytes | None, list[bytes]]:
    """A JPEG's EXIF block (None: none) and the data of its COM segments, for both texts.

    What EXIF cannot hold goes into comments (see the module's docstring): our JSON always,
    split over as many as it takes; the text when it fits one.
    """
    both = exif_block(parameters, studio_json)
    if len(both) <= JPEG_EXIF_LIMIT:
        return both, []
    data = studio_json.encode("utf-8")
    step = JPEG_SEGMENT_LIMIT - len(MAKER_PREFIX)
    comments = [MAKER_PREFIX + data[at : at + step] for at in range(0, len(data), step)]
    exif: bytes | None = exif_block(parameters)
    if len(exif) > JPEG_EXIF_LIMIT:
        exif, text = None, parameters.encode("utf-8")
        fits = len(text) <= JPEG_SEGMENT_LIMIT
        if fits:  # last: Pillow, and so A1111, keeps a file's last comment
            comments.append(text)
        log.warning(
            "the image's A1111 parameters (%d characters) are too long for a JPEG's 64 KiB "
            "of EXIF: %s; Studio's own metadata is kept whole (PNG and WebP keep both)",
            len(parameters),
            "written as a comment, which A1111 reads but most other tools don't"
            if fits
            else "other tools will find no settings",
        )
    return exif, comments


def with_comments(jpeg: bytes, comments: list[bytes]) -> bytes:
    """`jpeg` with a COM segment for each of `comments`, after its APPn segments (EXIF,
    colour profile) and before its tables, so that readers meet them with its headers."""
    at = 2  # after SOI
    while at + 4 <= len(jpeg) and jpeg[at] == 0xFF and 0xE0 <= jpeg[at + 1] <= 0xEF:
        at += 2 + int.from_bytes(jpeg[at + 2 : at + 4], "big")
    segments = b"".join(b"\xff\xfe" + struct.pack(">H", len(c) + 2) + c for c in comments)
    return jpeg[:at] + segments + jpeg[at:]


def _exif_tiff(tags: dict[int, bytes]) -> bytes:
    """A big-endian TIFF block whose IFD0 points to an Exif IFD of UNDEFINED-type `tags`.

    Written by hand because Pillow types unknown byte values as BYTE, which piexif (and so
    A1111) then reads as a tuple of numbers instead of the UserComment text.
    """
    exif_ifd_at = 8 + 2 + 12 + 4  # after the header and IFD0's one entry
    data_at = exif_ifd_at + 2 + 12 * len(tags) + 4
    ifd0 = struct.pack(">HHHII", 1, EXIF_IFD_POINTER, LONG, 1, exif_ifd_at) + b"\0" * 4
    entries, data = struct.pack(">H", len(tags)), b""
    for tag, value in sorted(tags.items()):
        if len(value) <= 4:
            where = value.ljust(4, b"\0")
        else:
            where = struct.pack(">I", data_at + len(data))
            data += value + b"\0" * (len(value) % 2)  # values start on word boundaries
        entries += struct.pack(">HHI", tag, UNDEFINED, len(value)) + where
    return b"MM\0\x2a" + struct.pack(">I", 8) + ifd0 + entries + b"\0" * 4 + data


def encode_user_comment(text: str) -> bytes:
    """EXIF UserComment as A1111/piexif write it: "UNICODE\\0" + UTF-16 big-endian."""
    return UNICODE_PREFIX + text.encode("utf-16-be")


def decode_user_comment(data: bytes | str, byte_order: str | None = None) -> str:
    """EXIF UserComment text: UNICODE in either byte order, ASCII, or bare bytes.

    UTF-16 order: a byte-order mark if any, else where the zero bytes of mostly-ASCII text
    sit, else the EXIF block's `byte_order` ("<" or ">"), else big-endian like piexif.
    """
    if isinstance(data, str):  # written with the wrong EXIF type: Pillow decoded it
        return data.rstrip("\0")
    prefix, body = data[:8], data[8:]
    if prefix == UNICODE_PREFIX:
        return _decode_utf16(body, byte_order).rstrip("\0")
    if prefix == b"JIS\0\0\0\0\0":
        return body.decode("shift_jis", "replace").rstrip("\0")
    if prefix in (b"ASCII\0\0\0", b"\0" * 8):
        return body.decode("utf-8", "replace").rstrip("\0")
    return data.decode("utf-8", "replace").rstrip("\0")


def _decode_utf16(body: bytes, byte_order: str | None) -> str:
    body = body[: len(body) // 2 * 2]
    if body[:2] in (b"\xfe\xff", b"\xff\xfe"):
        return body.decode("utf-16", "replace")  # honours and drops the mark
    sample = body[:4096]
    even_zeros, odd_zeros = sample[0::2].count(0), sample[1::2].count(0)
    if even_zeros > 2 * odd_zeros:
        codec = "utf-16-be"
    elif odd_zeros > 2 * even_zeros:
        codec = "utf-16-le"
    else:
        codec = "utf-16-le" if byte_order == "<" else "utf-16-be"
    return body.decode(codec, "replace")


def _png_texts(fp: BinaryIO, name: str) -> dict[str, str]:
    """Text chunks (and an eXIf chunk's text) of a PNG, walked past the pixel data."""
    png_header(fp, name)
    texts: dict[str, str] = {}
    from_exif: dict[str, str] = {}  # text chunks win over the same keys found in eXIf
    budget = MAX_TOTAL_TEXT  # counts bytes read and text decompressed
    for _ in range(MAX_PNG_CHUNKS):
        chunk = fp.read(8)
        if len(chunk) < 8 or chunk[4:] == b"IEND":
            break
        length, kind = struct.unpack(">I4s", chunk)
        end = fp.tell() + length + 4  # data, then CRC
        if (kind in PNG_TEXT_CHUNKS or kind == b"eXIf") and budget > 0:
            data = fp.read(min(length, MAX_TEXT_BYTES, budget))
            found = _chunk_texts(kind, data)
            budget -= len(data) + sum(len(text) for text in found.values())
            target = from_exif if kind == b"eXIf" else texts
            for key, text in found.items():
                target.setdefault(key, text)
        fp.seek(end)
    return {**from_exif, **texts}


def png_header(fp: BinaryIO, name: str) -> tuple[int, int, int]:
    """Width, height and colour type from the IHDR chunk, which must come first and be
    intact, of a size that can be opened safely; MetadataError saying what is wrong."""
    header = fp.read(25)  # length, type, 13 bytes of data, CRC
    if (
        len(header) < 25
        or header[:8] != b"\0\0\0\x0dIHDR"
        or zlib.crc32(header[4:21]) != int.from_bytes(header[21:25], "big")
    ):
        raise MetadataError(f"{name} is not a readable PNG image (damaged header)")
    width, height = struct.unpack(">II", header[8:16])
    _check_pixels(width, height, name)
    return width, height, header[17]


def _chunk_texts(kind: bytes, data: bytes) -> dict[str, str]:
    """{key: text} of one PNG chunk; {} for a damaged one. CRCs are not checked."""
    if kind == b"eXIf":
        exif = Image.Exif()
        try:
            exif.load(data)
            return _exif_texts(exif)
        except Exception:  # Pillow raises many types on damaged EXIF
            return {}
    key, _, rest = data.partition(b"\0")
    if not key:
        return {}
    if kind == b"tEXt":
        text = rest.decode("latin-1")
    elif kind == b"zTXt":
        text = _inflate(rest[1:]).decode("latin-1")
    else:  # iTXt: flag, method, language\0, translated key\0, text
        compressed, rest = rest[:1] == b"\1", rest[2:]
        body = rest.split(b"\0", 2)[-1] if rest.count(b"\0") >= 2 else b""
        text = (_inflate(body) if compressed else body).decode("utf-8", "replace")
    return {key.decode("latin-1"): text}


def _inflate(data: bytes) -> bytes:
    """Decompress at most MAX_TEXT_BYTES (zip bombs stop there); b"" when damaged."""
    try:
        return zlib.decompressobj().decompress(data, MAX_TEXT_BYTES)
    except zlib.error:
        return b""


def _pillow_texts(fp: BinaryIO, name: str) -> dict[str, str]:
    try:
        with Image.open(fp) as image:  # lazy: reads headers, not pixels
            try:
                texts = _exif_texts(image.getexif())
            except Exception:  # damaged EXIF is bad metadata, not a bad image
                texts = {}
            if "studio" not in texts and (json := _comment_json(image)):
                texts["studio"] = json
            return texts
    except Image.DecompressionBombError as exc:
        raise MetadataError(f"{name} is too large to open safely: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise MetadataError(f"{name} is not an image Studio can read") from exc
    except Exception as exc:  # a recognised format whose headers are damaged
        raise MetadataError(f"{name} could not be read as an image: {exc}") from exc


def _exif_texts(exif: Image.Exif) -> dict[str, str]:
    ifd = exif.get_ifd(ExifTags.IFD.Exif)
    texts: dict[str, str] = {}
    comment = ifd.get(USER_COMMENT, exif.get(USER_COMMENT))
    if isinstance(comment, bytes | str) and comment:
        texts["parameters"] = decode_user_comment(comment[:MAX_TEXT_BYTES], exif.endian)
    note = ifd.get(MAKER_NOTE)
    if isinstance(note, bytes) and note.startswith(MAKER_PREFIX):
        texts["studio"] = note[len(MAKER_PREFIX) : MAX_TEXT_BYTES].decode("utf-8", "replace")
    return texts


def _comment_json(image: Image.Image) -> str:
    """Our JSON from a JPEG's "Studio\\0" comments, in order ("" when none)."""
    parts = [
        data[len(MAKER_PREFIX) :]
        for marker, data in getattr(image, "applist", ())
        if marker == "COM" and data.startswith(MAKER_PREFIX)
    ]
    return b"".join(parts)[:MAX_TEXT_BYTES].decode("utf-8", "replace")


def _check_pixels(width: int, height: int, name: str) -> None:
    """Pillow's decompression-bomb rule (error above twice MAX_IMAGE_PIXELS), for PNGs."""
    limit = Image.MAX_IMAGE_PIXELS
    if not width or not height:
        raise MetadataError(f"{name} is not a readable PNG image (zero size)")
    if limit is not None and width * height > 2 * limit:
        raise MetadataError(
            f"{name} declares {width}x{height} pixels, more than the {2 * limit:,} "
            "that can be opened safely (a decompression bomb?)"
        )
