"""Export images into a folder: named from a template, never overwriting, all or nothing.

Each file is encoded in memory, then written with `atomic_open`, so a file is complete at
its final name or absent. When any image fails (disk full, unreadable source), the files
this export already wrote are removed too (and the folders it made, when empty) and one
`ExportError` says what went wrong.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import string
import time
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from studio.core.files import atomic_open
from studio.core.metadata import ImageMetadata, normalize_format, read_metadata, save_image

DEFAULT_TEMPLATE = "{date}_{seed}_{prompt}"
TEMPLATE_FIELDS = ("date", "time", "seed", "prompt", "index", "model")
SUFFIXES = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}
PROMPT_WORDS = 6
SLUG_CHARS = 60
NAME_BYTES = 180  # leaves room for "-123.webp" under the usual 255-byte limit
MAX_DUPLICATES = 10_000

_RESERVED_CHARS = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]+')
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {
    f"{name}{n}" for name in ("COM", "LPT") for n in range(1, 10)
}
# Errors from os.link on file systems without hard links (FAT, exFAT, some shares).
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK}


class ExportError(OSError):
    """An export that failed; nothing it wrote is left behind. The message names the cause."""


class ExportSource(Protocol):
    """Anything with an image `path` and its `metadata`, such as a `HistoryEntry`."""

    @property
    def path(self) -> Path: ...

    @property
    def metadata(self) -> ImageMetadata | None: ...


@dataclass(frozen=True)
class ExportItem:
    """An image file to export and the metadata to write into the copy."""

    source: Path
    metadata: ImageMetadata | None = None

    @property
    def path(self) -> Path:
        return Path(self.source)


def export_images(
    entries_or_sources: Iterable[ExportSource | str | os.PathLike[str]],
    folder: Path | str,
    *,
    fmt: str = "png",
    strip_metadata: bool = False,
    name_template: str = DEFAULT_TEMPLATE,
    quality: int = 95,
) -> list[Path]:
    """Write each image into `folder` (created if needed) and return the new files' paths.

    Items are history entries, `ExportItem`s or bare paths (whose own Studio metadata is
    kept). `strip_metadata` writes files without any. Names come from `name_template`
    (fields: {date} {time} {seed} {prompt} {index} {model}); an existing file is never
    replaced: "-1", "-2", … are added instead. Raises ValueError for a bad `fmt` or
    template before writing anything, `ExportError` when writing fails.
    """
    kind = normalize_format(fmt)
    check_template(name_template)
    folder = Path(folder)
    made = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    written: list[Path] = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for index, item in enumerate(entries_or_sources, start=1):
            source, metadata = _unpack(item)
            data = _encode(source, kind, None if strip_metadata else metadata, quality)
            stem = render_name(name_template, metadata, index=index, fallback=source.stem)
            written.append(_write_new(folder, stem, SUFFIXES[kind], data))
    except BaseException as exc:
        for path in written:
            path.unlink(missing_ok=True)
        for made_folder in made:  # the folders it made, if nothing else is in them now
            with contextlib.suppress(OSError):
                made_folder.rmdir()
        if isinstance(exc, OSError | ValueError | Image.DecompressionBombError):
            raise ExportError(f"Could not export to {folder}: {_describe(exc)}") from exc
        raise
    return written


def check_template(template: str) -> None:
    """Raise ValueError naming the problem when `template` is not a usable name template."""
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ValueError(f"bad file name template {template!r}: {exc}") from exc
    unknown = [name for name in fields if name not in TEMPLATE_FIELDS]
    if unknown:
        allowed = " ".join(f"{{{name}}}" for name in TEMPLATE_FIELDS)
        raise ValueError(f"unknown field {{{unknown[0]}}} in file name template; use {allowed}")


def render_name(
    template: str, metadata: ImageMetadata | None, *, index: int = 1, fallback: str = "image"
) -> str:
    """A safe file name (no suffix) from `template`; `fallback` stands in for {prompt}."""
    check_template(template)
    values = _fields(metadata, index, fallback)
    return safe_filename(_LenientFormatter().vformat(template, (), values))


def safe_filename(name: str) -> str:
    """`name` made safe on Windows, macOS and Linux: no separators, reserved characters or
    names, no leading dots (no hidden files, no ".."), at most NAME_BYTES of UTF-8.

    Runs of "_" or "-" and those at either end are trimmed, so empty fields leave no trace.
    """
    name = _RESERVED_CHARS.sub("_", unicodedata.normalize("NFC", name))
    name = re.sub(r"([_-])\1+", r"\1", name)
    name = name.encode("utf-8")[:NAME_BYTES].decode("utf-8", "ignore")
    name = name.strip(" ._-")  # Windows also drops trailing dots and spaces
    if name.split(".")[0].upper() in _WINDOWS_RESERVED:
        name = f"_{name}"
    return name or "image"


def slug(text: str, *, words: int = PROMPT_WORDS, limit: int = SLUG_CHARS) -> str:
    """The first `words` words of `text`, lower case, joined by "-", at most `limit` chars."""
    return "-".join(re.findall(r"\w+", text.lower())[:words])[:limit].strip("-_")


class _LenientFormatter(string.Formatter):
    """Applies a field's format spec when it can ({index:03d}) and plain str() otherwise,
    so an image without a seed does not break "{seed:08d}"."""

    def format_field(self, value: Any, format_spec: str) -> str:
        try:
            return format(value, format_spec)
        except (TypeError, ValueError):
            return str(value)


def _fields(metadata: ImageMetadata | None, index: int, fallback: str) -> Mapping[str, Any]:
    if metadata is None:
        seed, prompt, model = "", fallback, ""
    else:
        request = metadata.request
        seed, prompt, model = request.seed, request.prompt, metadata.model_name or request.model
    moment = _moment(metadata.created_at if metadata is not None else 0.0)
    return {
        "date": moment.strftime("%Y-%m-%d"),
        "time": moment.strftime("%H%M%S"),
        "seed": seed,
        "prompt": slug(prompt) or "image",
        "index": index,
        "model": slug(model, words=12),
    }


def _moment(created_at: float) -> datetime:
    """Local time of `created_at`, or now when it is unset or absurd."""
    try:
        return datetime.fromtimestamp(created_at or time.time())
    except (OverflowError, OSError, ValueError):
        return datetime.now()


def _unpack(item: ExportSource | str | os.PathLike[str]) -> tuple[Path, ImageMetadata | None]:
    if isinstance(item, str | os.PathLike):
        path = Path(item)
        return path, read_metadata(path).studio
    return Path(item.path), item.metadata


def _encode(source: Path, kind: str, metadata: ImageMetadata | None, quality: int) -> bytes:
    buffer = io.BytesIO()
    with Image.open(source) as image:  # Pillow's decompression-bomb guard applies
        image.load()
        save_image(image, buffer, kind, metadata, quality=quality)
    return buffer.getvalue()


def _write_new(folder: Path, stem: str, suffix: str, data: bytes) -> Path:
    """Write `data` under the first free name of stem, stem-1, stem-2, …"""
    for n in range(MAX_DUPLICATES):
        path = folder / f"{stem}-{n}{suffix}" if n else folder / f"{stem}{suffix}"
        if os.path.lexists(path):
            continue
        try:
            _write_exclusive(path, data)
        except FileExistsError:
            continue  # taken since we looked
        return path
    raise FileExistsError(errno.EEXIST, f"no free name for {stem}{suffix}", str(folder))


def _write_exclusive(path: Path, data: bytes) -> None:
    """Write atomically without replacing an existing file, even where hard links (which
    `atomic_open` uses for that) don't exist: then the name was free a moment ago."""
    try:
        with atomic_open(path, overwrite=False) as handle:
            handle.write(data)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS or os.path.lexists(path):
            raise
        with atomic_open(path, overwrite=True) as handle:
            handle.write(data)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return str(exc) or type(exc).__name__
