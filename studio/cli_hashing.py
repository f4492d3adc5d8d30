"""The short hashes `studio models list` shows: cached ones at once; missing ones computed
(the slow part: a 4 GB file takes seconds) with their progress on stderr, or left unknown
with --no-hash."""

from __future__ import annotations

import sys
from typing import TextIO

from studio.core.load_progress import bytes_read
from studio.core.model_files import ModelFile
from studio.core.models import ModelLibrary, Progress

CLEAR_LINE = "\r\033[K"


class ListedHashes:
    """Short hashes for a listing. On a terminal, "hashing NAME 1.2 / 4.3 GB" rewritten in
    place while a file is hashed, then cleared; piped, one line per file hashed."""

    def __init__(
        self, library: ModelLibrary, compute: bool, quiet: bool, stream: TextIO | None = None
    ) -> None:
        self.library = library
        self.compute = compute
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()

    def of(self, info: ModelFile) -> str | None:
        """Its short hash; None when not hashed before and not to be computed now."""
        known = self.library.cached_short_hash(info)
        if known is not None or not self.compute:
            return known
        if self.quiet:
            return self.library.short_hash(info)
        if not self.tty:
            print(f"hashing {info.name}", file=self.stream, flush=True)
            return self.library.short_hash(info)
        try:
            return self.library.short_hash(info, self._line(info.name))
        finally:
            print(CLEAR_LINE, end="", file=self.stream, flush=True)

    def _line(self, name: str) -> Progress:
        last = ""

        def show(done: int, total: int) -> None:
            nonlocal last
            text = f"hashing {name} {bytes_read(done, total, 1)}"
            if text != last:  # a line per 0.1 GB, not per chunk read
                last = text
                print(f"\r{text}", end="", file=self.stream, flush=True)

        return show
