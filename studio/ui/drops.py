"""What a drop (or paste) carries, read the same way everywhere."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from PySide6.QtCore import QMimeData


def dropped_file(data: QMimeData, suffixes: Collection[str]) -> Path | None:
    """The one local file `data` carries, if its name ends in one of `suffixes` (by name:
    whoever reads it checks the content)."""
    urls = data.urls() if data.hasUrls() else []
    if len(urls) != 1 or not urls[0].isLocalFile():
        return None
    path = Path(urls[0].toLocalFile())
    return path if path.suffix.lower() in suffixes and path.is_file() else None
