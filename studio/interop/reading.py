"""Reading an image's generation settings, whichever tool wrote them.

Order (`READERS`; earlier wins a tie):
 0. Studio's own metadata, read by the core, whenever present: it holds the whole request.
 1. InvokeAI 3+ (`invokeai_metadata`), 2. InvokeAI 2 (`sd-metadata`, then `Dream`),
 3. NovelAI (`Software`/`Source`/`Description`/`Comment`),
 4. Stability Matrix (`parameters-json`),
 5. `parameters`, EXIF UserComment, a JPEG comment: JSON by its keys (SwarmUI, Fooocus,
    NovelAI, Stability Matrix, Civitai, a ComfyUI graph), else A1111's text layout,
 6. ComfyUI's graphs (`prompt`/`workflow` chunks; EXIF "prompt:"/"workflow:" tags),
 7. Easy Diffusion (a chunk per setting),
 8. only when none of those found anything: text hidden in the pixels' low bits.

Every reader that recognises something is a candidate; each candidate's values are
checked (`values`). The most complete candidate wins, counting the settings a user needs
again and not counting placeholders ("unknown", a seed of 0): so ComfyUI's graph beats
Image Saver's text of unconnected inputs. Then the winner's missing or placeholder
values are filled from the other candidates, in order.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from studio.core.metadata import MetadataError, ParsedMetadata, read_metadata
from studio.core.metadata_formats import load_json
from studio.interop import (
    comfyui,
    easy_diffusion,
    invokeai,
    invokeai2,
    novelai,
    parameters,
    stability_matrix,
)
from studio.interop.containers import read_entries
from studio.interop.entries import MAX_TEXT_BYTES, Entries
from studio.interop.found import SCORED_FIELDS, Found, is_placeholder
from studio.interop.values import checked

Reader = Callable[[Entries], list[Found]]
READERS: tuple[Reader, ...] = (
    invokeai.read,
    invokeai2.read,
    novelai.read,
    stability_matrix.read,
    parameters.read,
    comfyui.read,
    easy_diffusion.read,
)
FILLED_FIELDS = (*SCORED_FIELDS, "model_hash")
RAW_TEXT_CHARS = 64 * 1024  # kept per entry in `ParsedMetadata.raw`
MAX_RAW_KEYS = 64
HIDDEN_NOTE = "read from text hidden in the pixels (stealth metadata)"


def read(source: Path | str | BinaryIO) -> ParsedMetadata:
    """The generation settings `source` (a path or a binary handle) records.

    Raises `MetadataError` when it is not an image, is damaged (a PNG cut short) or
    declares too many pixels; OSError when a path cannot be opened. Metadata that cannot
    be read never raises: it is missing, with a note in `notes`.
    """
    if isinstance(source, str | Path):
        with open(source, "rb") as fp:
            return _read(fp, str(source))
    return _read(source, str(getattr(source, "name", "the image")))


def _read(fp: BinaryIO, name: str) -> ParsedMetadata:
    entries = read_entries(fp, name)
    if entries.has_studio:
        try:
            own = read_metadata(fp)
        except MetadataError:
            own = None
        if own is not None and own.studio is not None:
            return own
    found = interpret(entries)
    if found.source_format == "none" and entries.hidden is not None:
        hidden = entries.hidden()
        if hidden:
            from_pixels = interpret(hidden_entries(hidden, name))
            if from_pixels.source_format != "none":
                found = from_pixels
                found.notes.insert(0, HIDDEN_NOTE)
    found.raw = {
        key: text[:RAW_TEXT_CHARS]
        for key, text in list({**entries.texts, **entries.cut}.items())[:MAX_RAW_KEYS]
    }
    return found


def interpret(entries: Entries) -> ParsedMetadata:
    """The best reading of `entries`, filled from the others (see the module docstring)."""
    notes = [
        f"the {key} text is longer than {MAX_TEXT_BYTES >> 20} MiB: it was not read"
        for key in entries.cut
    ]
    candidates: list[ParsedMetadata] = []
    for reader in READERS:
        for found in reader(entries):
            reading = checked(found)
            if reading.extra or any(_worth(n, getattr(reading, n)) for n in FILLED_FIELDS):
                candidates.append(reading)
            else:
                notes += reading.notes
    if not candidates:
        return ParsedMetadata("none", notes=notes)
    best = max(candidates, key=completeness)  # the first of equals: reading order
    for other in candidates:
        if other is not best:
            _fill(best, other)
    best.notes = notes + best.notes
    return best


def completeness(found: ParsedMetadata) -> int:
    return sum(not is_placeholder(name, getattr(found, name)) for name in SCORED_FIELDS)


def hidden_entries(text: str, name: str) -> Entries:
    """Hidden text as entries: NovelAI hides its chunks as one JSON object, A1111 its
    `parameters` text."""
    entries = Entries(name)
    data = load_json(text) if text.lstrip().startswith("{") else None
    if isinstance(data, dict) and "Comment" in data:
        for key, value in data.items():
            if isinstance(value, str):
                entries.add(str(key), value)
            elif isinstance(value, dict):  # a Comment already parsed
                entries.add(str(key), json.dumps(value))
    else:
        entries.add("parameters", text)
    return entries


def _fill(best: ParsedMetadata, other: ParsedMetadata) -> None:
    for name in FILLED_FIELDS:
        if _worth(name, getattr(other, name)) > _worth(name, getattr(best, name)):
            setattr(best, name, getattr(other, name))
    for key, value in other.extra.items():
        best.extra.setdefault(key, value)


def _worth(name: str, value: object) -> int:
    """0 missing, 1 a placeholder ("unknown", seed 0), 2 a value."""
    if value is None or value == "":
        return 0
    return 1 if is_placeholder(name, value) else 2
