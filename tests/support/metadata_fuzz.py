"""Mutations of image files' metadata, for fuzzing Studio's readers (`bench/fuzz_metadata.py`
runs a million; `tests/interop` a few thousand).

Mutations aim at what the readers parse, not at the pixels: PNG text and eXIf chunks,
JPEG APP1 and comment segments, WebP EXIF chunks. Kinds: bit flips and byte swaps in a
metadata span, truncation, a huge or wrong length field, random bytes spliced in, the
text replaced by random JSON, the text's own JSON with random values put at random
places (links that lead nowhere, huge numbers, deep nesting), and zip bombs.
"""

from __future__ import annotations

import io
import json
import random
import struct
import zlib
from collections.abc import Callable
from typing import Any

from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_META = {b"tEXt", b"zTXt", b"iTXt", b"eXIf"}
WEIRD_NUMBERS: list[Any] = [
    0, -1, -5, 1, 2**31, 2**32, 2**63, 2**64 - 1, 2**64, 10**24, 10**300, 1e308, -1e308,
    0.5, 20.5, True, False, None, float("nan"), float("inf"),
]  # fmt: skip
JSON_KEYS = [
    "prompt", "seed", "steps", "cfg", "width", "height", "inputs", "class_type",
    "sui_image_params", "uc", "scale", "Comment", "nodes", "links", "text", "model",
    "positive", "negative", "latent_image", "guider", "extraMetadata",
]  # fmt: skip
WEIRD_STRINGS = ["", "unknown", "0", "-5", "1e400", "512x0", "(1152, 896)", "x" * 300, "\0", "🦊"]


class Span:
    """Where a metadata block's length field, type and data sit in a file."""

    def __init__(self, kind: str, length_at: int, data_at: int, data_end: int) -> None:
        self.kind, self.length_at, self.data_at = kind, length_at, data_at
        self.data_end = max(data_at, data_end)  # a block cut short ends where the file does


def spans(data: bytes) -> list[Span]:
    """The metadata blocks of a PNG, JPEG or WebP file."""
    if data.startswith(PNG_SIGNATURE):
        return _png_spans(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_spans(data)
    if data[:2] == b"\xff\xd8":
        return _jpeg_spans(data)
    return []


def _png_spans(data: bytes) -> list[Span]:
    found, at = [], len(PNG_SIGNATURE)
    while at + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        end = at + 8 + length
        if kind in PNG_META:
            found.append(Span("png:" + kind.decode(), at, at + 8, min(end, len(data))))
        at = end + 4
    return found


def _jpeg_spans(data: bytes) -> list[Span]:
    found, at = [], 2
    while at + 4 <= len(data) and data[at] == 0xFF and data[at + 1] not in (0xDA, 0xD9):
        marker = data[at + 1]
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        if marker in (0xE1, 0xFE):  # EXIF, comment
            found.append(
                Span(f"jpeg:{marker:02x}", at + 2, at + 4, min(at + 2 + length, len(data)))
            )
        at += 2 + length
    return found


def _webp_spans(data: bytes) -> list[Span]:
    found, at = [], 12
    while at + 8 <= len(data):
        kind, length = data[at : at + 4], struct.unpack("<I", data[at + 4 : at + 8])[0]
        if kind == b"EXIF":
            found.append(Span("webp:EXIF", at + 4, at + 8, min(at + 8 + length, len(data))))
        at += 8 + length + (length & 1)
    return found


# --------------------------------------------------------------------------- mutations


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One mutation of `data`'s metadata (several, sometimes)."""
    for _ in range(1 if rng.random() < 0.8 else rng.randint(2, 4)):
        blocks = spans(data)
        if not blocks:  # metadata hidden in the pixels, or none left
            hidden = data.startswith(PNG_SIGNATURE) and rng.random() < 0.7
            return _mutate_hidden(data, rng) if hidden else _truncate(data, rng)
        span = rng.choice(blocks)
        data = rng.choices(MUTATIONS, weights=WEIGHTS)[0](data, span, rng)
    return data


def _flip_bits(data: bytes, span: Span, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if span.data_end > span.data_at:
            out[rng.randrange(span.data_at, span.data_end)] ^= 1 << rng.randrange(8)
    return bytes(out)


def _set_bytes(data: bytes, span: Span, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if span.data_end > span.data_at:
            out[rng.randrange(span.data_at, span.data_end)] = rng.choice(
                (0, 0x22, 0x7B, 0x5B, 0xFF, 0x80)
            )
    return bytes(out)


def _truncate(data: bytes, rng: random.Random, span: Span | None = None) -> bytes:
    low = span.length_at if span else 0
    high = span.data_end if span else len(data)
    return data[: rng.randint(low, max(low, high))]


def _truncate_span(data: bytes, span: Span, rng: random.Random) -> bytes:
    return _truncate(data, rng, span)


def _huge_length(data: bytes, span: Span, rng: random.Random) -> bytes:
    out = bytearray(data)
    if span.kind.startswith("png"):
        value = rng.choice((0xFFFFFFFF, 0x7FFFFFFF, len(data) * 4, 0, rng.getrandbits(32)))
        out[span.length_at : span.length_at + 4] = struct.pack(">I", value)
    elif span.kind.startswith("jpeg"):
        out[span.length_at : span.length_at + 2] = struct.pack(">H", rng.choice((0, 1, 2, 0xFFFF)))
    else:
        value = rng.choice((0xFFFFFFFF, 0xFFFFFFF0, len(data) * 4, rng.getrandbits(32)))
        out[span.length_at : span.length_at + 4] = struct.pack("<I", value)
    return bytes(out)


def _splice(data: bytes, span: Span, rng: random.Random) -> bytes:
    at = rng.randint(span.data_at, span.data_end)
    junk = rng.randbytes(rng.randint(1, 64))
    return data[:at] + junk + data[at:]


def _random_json(data: bytes, span: Span, rng: random.Random) -> bytes:
    return _replace_text(data, span, json.dumps(random_json(rng)), rng)


def _mutate_json(data: bytes, span: Span, rng: random.Random) -> bytes:
    """The block's own JSON (a graph, settings) with random values at random places."""
    text = _text_of(data, span)
    start = text.find("{")
    try:
        value = json.loads(text[start:]) if start >= 0 else None
    except ValueError:
        value = None
    if value is None:
        return _random_json(data, span, rng)
    for _ in range(rng.randint(1, 6)):
        value = _poke(value, rng)
    return _replace_text(data, span, text[:start] + json.dumps(value), rng)


def _zip_bomb(data: bytes, span: Span, rng: random.Random) -> bytes:
    if not span.kind.startswith("png"):
        return _splice(data, span, rng)
    key = _png_key(data, span) or b"parameters"
    if rng.random() < 0.5:
        text = b"{" * rng.randint(1, 3) + b"a" * rng.choice((1 << 20, 3 << 20))
    else:
        text = b"[" * (2 << 20)
    body = key + b"\0\0" + zlib.compress(text, 9)
    return _replace_chunk(data, span, b"zTXt", body)


MUTATIONS: list[Callable[[bytes, Span, random.Random], bytes]] = [
    _flip_bits,
    _set_bytes,
    _truncate_span,
    _huge_length,
    _splice,
    _random_json,
    _mutate_json,
    _zip_bomb,
]
WEIGHTS = [20, 10, 8, 8, 8, 12, 30, 4]


def _mutate_hidden(data: bytes, rng: random.Random) -> bytes:
    """Flip the low bits where stealth metadata sits (signature, length, payload) and save
    the pixels again; a PNG Pillow cannot decode is truncated instead."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            pixels = image.copy()
    except Exception:
        return _truncate(data, rng)
    width, height = pixels.size
    channels = len(pixels.getbands())
    if width * height == 0:
        return data
    edits = pixels.load()
    for _ in range(rng.randint(1, 16)):
        at = rng.choice((rng.randrange(min(200, width * height)), rng.randrange(width * height)))
        x, y = divmod(at, height)  # column by column, as the hidden bits run
        value = list(edits[x, y]) if channels > 1 else [edits[x, y]]
        value[rng.randrange(channels)] ^= 1
        edits[x, y] = tuple(value) if channels > 1 else value[0]
    buffer = io.BytesIO()
    pixels.save(buffer, "PNG")
    return buffer.getvalue()


# --------------------------------------------------------------------------- JSON


def random_json(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 4 or roll < 0.35:
        return _leaf(rng)
    if roll < 0.7:
        keys = [*JSON_KEYS, str(rng.randint(0, 99))]
        return {rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randint(0, 6))}
    return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 5))]


def _leaf(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.4:
        return rng.choice(WEIRD_NUMBERS)
    if roll < 0.7:
        return rng.choice(WEIRD_STRINGS)
    if roll < 0.9:
        return [str(rng.randint(0, 40)), rng.randint(0, 2)]  # a ComfyUI link
    return "[" * rng.randint(1, 3000)


def _poke(value: Any, rng: random.Random, depth: int = 0) -> Any:
    """`value` with one random place replaced (or a key deleted, or nesting added)."""
    if isinstance(value, dict) and value and depth < 8 and rng.random() < 0.8:
        key = rng.choice(list(value))
        roll = rng.random()
        if roll < 0.1:
            return {k: v for k, v in value.items() if k != key}
        return {**value, key: _poke(value[key], rng, depth + 1)}
    if isinstance(value, list) and value and depth < 8 and rng.random() < 0.8:
        at = rng.randrange(len(value))
        return [*value[:at], _poke(value[at], rng, depth + 1), *value[at + 1 :]]
    if rng.random() < 0.05:
        return json.loads("[" * 200 + "1" + "]" * 200)
    return random_json(rng, 3)


# --------------------------------------------------------------------------- rebuilding blocks


def _text_of(data: bytes, span: Span) -> str:
    body = data[span.data_at : span.data_end]
    if span.kind in ("png:tEXt",):
        body = body.partition(b"\0")[2]
    elif span.kind == "png:iTXt":
        body = body.partition(b"\0")[2][2:].split(b"\0", 2)[-1]
    elif span.kind == "png:zTXt":
        try:
            body = zlib.decompress(body.partition(b"\0")[2][1:])
        except zlib.error:
            body = b""
    elif b"UNICODE\0" in body:
        body = body.split(b"UNICODE\0", 1)[1].decode("utf-16-be", "replace").encode()
    return body.decode("utf-8", "replace")


def _png_key(data: bytes, span: Span) -> bytes:
    return data[span.data_at : span.data_end].partition(b"\0")[0][:79]


def _replace_text(data: bytes, span: Span, text: str, rng: random.Random) -> bytes:
    if span.kind.startswith("png") and span.kind != "png:eXIf":
        key = _png_key(data, span) or b"parameters"
        if rng.random() < 0.5:
            return _replace_chunk(data, span, b"tEXt", key + b"\0" + text.encode("utf-8"))
        return _replace_chunk(data, span, b"iTXt", key + b"\0\0\0\0\0" + text.encode("utf-8"))
    if span.kind == "jpeg:fe":
        body = text.encode("utf-8")[:65000]
        return (
            data[: span.length_at] + struct.pack(">H", len(body) + 2) + body + data[span.data_end :]
        )
    exif = _user_comment_exif(text)
    if span.kind == "jpeg:e1":
        exif = exif[:65000]
        return (
            data[: span.length_at] + struct.pack(">H", len(exif) + 2) + exif + data[span.data_end :]
        )
    if span.kind == "png:eXIf":
        return _replace_chunk(data, span, b"eXIf", exif[6:])
    pad = b"\0" if len(exif) & 1 else b""
    return (
        data[: span.length_at] + struct.pack("<I", len(exif)) + exif + pad + data[span.data_end :]
    )


def _replace_chunk(data: bytes, span: Span, kind: bytes, body: bytes) -> bytes:
    chunk = struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return data[: span.length_at] + chunk + data[span.data_end + 4 :]


def _user_comment_exif(text: str) -> bytes:
    comment = b"UNICODE\0" + text.encode("utf-16-be")
    tiff = b"MM\0\x2a" + struct.pack(">I", 8)
    tiff += struct.pack(">HHHII", 1, 0x8769, 4, 1, 26) + b"\0\0\0\0"
    tiff += struct.pack(">HHHII", 1, 0x9286, 7, len(comment), 44) + b"\0\0\0\0"
    return b"Exif\0\0" + tiff + comment
