"""How other generators put metadata into files, written again from what their writers do
(never with Studio's writer), for tests and benchmarks of Studio's readers.

- Most Python tools (A1111, ComfyUI, Fooocus, InvokeAI, Easy Diffusion, Image Saver) use
  Pillow's `PngInfo.add_text`, which writes tEXt for Latin-1 text and iTXt otherwise.
- Tools in other languages write chunks of their own: `png_with_chunks` inserts raw
  chunks, e.g. a tEXt holding UTF-8, as NovelAI's and SwarmUI's files have.
- A1111 and Image Saver put JPEG/WebP text into EXIF with piexif: a big-endian TIFF block
  whose IFD0 points to an Exif IFD with UserComment = "UNICODE\\0" + UTF-16BE text.
- ComfyUI's WebP saver sets EXIF Model to "prompt:{json}" and Make to "workflow:{json}".
- "Stealth" metadata: the payload's bits in the pixels' lowest bits, column by column.
"""

from __future__ import annotations

import gzip
import io
import json
import struct
import zlib
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def picture(size: tuple[int, int] = (8, 8), mode: str = "RGB") -> Image.Image:
    """A small picture with some structure (a gradient), so encoders have work to do."""
    width, height = size
    image = Image.new("RGB", size)
    image.putdata(
        [
            ((x * 37) % 256, (y * 53) % 256, ((x + y) * 11) % 256)
            for y in range(height)
            for x in range(width)
        ]
    )
    if mode == "RGBA":
        image = image.convert("RGBA")
    return image


# --------------------------------------------------------------------------- PNG


def pillow_png(texts: list[tuple[str, str]], image: Image.Image | None = None) -> bytes:
    """A PNG as Python tools save one: `PngInfo.add_text` for each text, in order."""
    info = PngInfo()
    for key, value in texts:
        info.add_text(key, value)
    buffer = io.BytesIO()
    (image or picture()).save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


def text_chunk(key: str, text: str, encoding: str = "latin-1") -> tuple[bytes, bytes]:
    """A tEXt chunk; `encoding` "utf-8" is what non-Python writers often put there."""
    return b"tEXt", key.encode("latin-1") + b"\0" + text.encode(encoding)


def itxt_chunk(key: str, text: str) -> tuple[bytes, bytes]:
    return b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + text.encode("utf-8")


def png_with_chunks(
    chunks: list[tuple[bytes, bytes]],
    image: Image.Image | None = None,
    *,
    after_pixels: bool = False,
) -> bytes:
    """A PNG of `image` with `chunks` added right after IHDR, or after the pixel data."""
    buffer = io.BytesIO()
    (image or picture()).save(buffer, "PNG")
    data = buffer.getvalue()
    parts = _split_png(data)
    extra = [_chunk(kind, body) for kind, body in chunks]
    at = len(parts) - 1 if after_pixels else 1  # before IEND, or after IHDR
    return PNG_SIGNATURE + b"".join(parts[:at] + extra + parts[at:])


def _split_png(data: bytes) -> list[bytes]:
    parts, at = [], len(PNG_SIGNATURE)
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        parts.append(data[at : at + 12 + length])
        at += 12 + length
    return parts


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


# --------------------------------------------------------------------------- EXIF


def piexif_user_comment(text: str) -> bytes:
    """What `piexif.dump({"Exif": {UserComment: UserComment.dump(text, "unicode")}})` makes:
    "Exif\\0\\0", a big-endian TIFF header, IFD0 with the Exif IFD pointer, the Exif IFD."""
    comment = b"UNICODE\0" + text.encode("utf-16-be")
    ifd0_at, exif_at = 8, 8 + 2 + 12 + 4
    data_at = exif_at + 2 + 12 + 4
    tiff = b"MM\0\x2a" + struct.pack(">I", ifd0_at)
    tiff += struct.pack(">HHHII", 1, 0x8769, 4, 1, exif_at) + b"\0\0\0\0"
    tiff += struct.pack(">HHHII", 1, 0x9286, 7, len(comment), data_at) + b"\0\0\0\0"
    return b"Exif\0\0" + tiff + comment


def jpeg_with_app1(exif: bytes, image: Image.Image | None = None, quality: int = 90) -> bytes:
    """A JPEG as A1111 leaves it: saved by Pillow, then `piexif.insert` puts the EXIF
    segment right after the start-of-image marker."""
    buffer = io.BytesIO()
    (image or picture()).convert("RGB").save(buffer, "JPEG", quality=quality)
    data = buffer.getvalue()
    segment = b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif
    return data[:2] + segment + data[2:]


def pillow_save(image: Image.Image | None = None, fmt: str = "WEBP", **options: Any) -> bytes:
    """An image saved by Pillow with `options` (exif=…, comment=…), as tools call it."""
    buffer = io.BytesIO()
    (image or picture()).save(buffer, fmt, **options)
    return buffer.getvalue()


def comfyui_exif(prompt: dict[str, Any], extra_pnginfo: dict[str, Any]) -> Image.Exif:
    """ComfyUI's SaveAnimatedWEBP: Model (0x0110) = "prompt:…", then each extra entry from
    Make (0x010F) downwards."""
    exif = picture().getexif()
    exif[0x0110] = f"prompt:{json.dumps(prompt)}"
    tag = 0x010F
    for key, value in extra_pnginfo.items():
        exif[tag] = f"{key}:{json.dumps(value)}"
        tag -= 1
    return exif


# --------------------------------------------------------------------------- stealth


def stealth_bits(payload: bytes, signature: str) -> str:
    """The stealth-pnginfo layout: signature, payload length in bits (32), payload; as
    '0'/'1' text, most significant bit first."""
    bits = "".join(format(byte, "08b") for byte in payload)
    head = "".join(format(byte, "08b") for byte in signature.encode("utf-8"))
    return head + format(len(bits), "032b") + bits


def with_stealth(
    image: Image.Image, text: str, *, mode: str = "alpha", compressed: bool = True
) -> Image.Image:
    """`image` with `text` hidden as A1111's stealth-pnginfo extension hides it: alpha set
    opaque first, then the low bit of alpha (or of R, G, B in turn) down each column."""
    kind = "png" if mode == "alpha" else "rgb"
    signature = f"stealth_{kind}{'comp' if compressed else 'info'}"
    payload = gzip.compress(text.encode("utf-8")) if compressed else text.encode("utf-8")
    bits = stealth_bits(payload, signature)
    out = image.convert("RGBA" if mode == "alpha" else "RGB")
    if mode == "alpha":
        out.putalpha(255)
    pixels = out.load()
    width, height = out.size
    index = 0
    for x in range(width):
        for y in range(height):
            if index >= len(bits):
                return out
            values = list(pixels[x, y])
            channels = [3] if mode == "alpha" else [0, 1, 2]
            for channel in channels:
                if index < len(bits):
                    values[channel] = (values[channel] & ~1) | int(bits[index])
                    index += 1
            pixels[x, y] = tuple(values)
    if index < len(bits):
        raise ValueError("the picture is too small for the text")
    return out


# --------------------------------------------------------------------------- ComfyUI


def comfyui_workflow(api: dict[str, Any], widgets: dict[str, list[str]]) -> dict[str, Any]:
    """The UI `workflow` ComfyUI's front end saves for the graph `api`: nodes with their
    widget values by position (`widgets` gives each class's order; "control_after_generate"
    follows a seed), links as [id, from node, from slot, to node, to slot, type]."""
    nodes, links = [], []
    for order, (node_id, node) in enumerate(api.items()):
        names = widgets.get(node["class_type"], [])
        values = [
            "randomize" if name == "control_after_generate" else node["inputs"].get(name)
            for name in names
        ]
        slots = []
        for slot, (name, value) in enumerate(
            (n, v) for n, v in node["inputs"].items() if isinstance(v, list)
        ):
            link_id = len(links) + 1
            links.append([link_id, int(value[0]), value[1], int(node_id), slot, "*"])
            slots.append({"name": name, "type": "*", "link": link_id})
        nodes.append(
            {
                "id": int(node_id),
                "type": node["class_type"],
                "pos": [100 * order, 100],
                "size": [315, 262],
                "flags": {},
                "order": order,
                "mode": 0,
                "inputs": slots,
                "outputs": [],
                "properties": {"Node name for S&R": node["class_type"]},
                "widgets_values": values,
            }
        )
    return {
        "last_node_id": max(int(i) for i in api),
        "last_link_id": len(links),
        "nodes": nodes,
        "links": links,
        "groups": [],
        "config": {},
        "extra": {"ds": {"scale": 1, "offset": [0, 0]}},
        "version": 0.4,
    }
