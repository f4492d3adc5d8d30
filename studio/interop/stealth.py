"""Text hidden in the pixels' lowest bits ("stealth" metadata, as NovelAI and A1111's
stealth-pnginfo extension write it), which survives sites that strip text chunks.

The bits run down each column, left column first, most significant bit first: in the
alpha channel ("stealth_pnginfo", "stealth_pngcomp") or, in an image without alpha, the
red, green and blue channels in turn ("stealth_rgbinfo", "stealth_rgbcomp"). After the
signature come 32 bits of payload length, in bits, then the payload: UTF-8 text, gzipped
for the "comp" signatures. This needs the pixels decoded, so it is read last and only
for PNGs of up to MAX_PIXELS.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import BinaryIO

from PIL import Image

from studio.interop.entries import MAX_TEXT_BYTES

MAX_PIXELS = 8 * 1024 * 1024  # decoded RGBA: 32 MiB
ALPHA_SIGNATURES = ((b"stealth_pnginfo", False), (b"stealth_pngcomp", True))
RGB_SIGNATURES = ((b"stealth_rgbinfo", False), (b"stealth_rgbcomp", True))
SIGNATURE_BITS = 15 * 8
LENGTH_BITS = 32
# Each byte's lowest bit as an ASCII digit, so that int(bits, 2) packs them.
_LOW_BIT = bytes(0x30 + (value & 1) for value in range(256))
GRAY_ALPHA, RGB, RGBA = 4, 2, 6  # PNG colour types


def reader(
    fp: BinaryIO, width: int, height: int, color_type: int
) -> Callable[[], str | None] | None:
    """A function that reads the hidden text of this PNG, or None when it cannot hold any."""
    if color_type not in (GRAY_ALPHA, RGB, RGBA) or width * height > MAX_PIXELS:
        return None
    alpha = color_type != RGB
    per_pixel = 1 if alpha else 3
    if width * height * per_pixel < SIGNATURE_BITS + LENGTH_BITS:
        return None
    return lambda: _read(fp, alpha)


def _read(fp: BinaryIO, alpha: bool) -> str | None:
    fp.seek(0)
    try:
        with Image.open(fp) as image:
            image.load()
            if alpha and image.mode in ("RGBA", "LA"):
                channels = image.getchannel("A")
            elif not alpha and image.mode == "RGB":
                channels = image
            else:
                return None
            data = channels.transpose(Image.Transpose.TRANSPOSE).tobytes()
    except Exception:  # damaged pixel data: Pillow raises many types; nothing hidden then
        return None
    return decode(data.translate(_LOW_BIT), alpha)


def decode(bits: bytes, alpha: bool) -> str | None:
    """The hidden text in `bits` (ASCII "0"/"1", in reading order), or None."""
    head = _pack(bits[:SIGNATURE_BITS])
    signatures = ALPHA_SIGNATURES if alpha else RGB_SIGNATURES
    compressed = next((comp for sig, comp in signatures if sig == head), None)
    if compressed is None:
        return None
    start = SIGNATURE_BITS + LENGTH_BITS
    length = int(bits[SIGNATURE_BITS:start], 2)
    if length % 8 or length > min(len(bits) - start, 8 * MAX_TEXT_BYTES):
        return None
    payload = _pack(bits[start : start + length])
    if compressed:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip
        try:
            payload = inflater.decompress(payload, MAX_TEXT_BYTES)
        except zlib.error:
            return None
    return payload.decode("utf-8", "replace")


def _pack(bits: bytes) -> bytes:
    return int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""
