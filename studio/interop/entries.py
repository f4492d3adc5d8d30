"""The metadata texts one file carries, by where they were found."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

MAX_TEXT_BYTES = 1 << 20  # read per entry: big ComfyUI workflows still fit
MAX_TOTAL_TEXT = 8 << 20  # read across all entries of one file

# Where EXIF and JPEG texts appear (PNG text chunks keep their own keys).
USER_COMMENT = "EXIF UserComment"
IMAGE_DESCRIPTION = "EXIF ImageDescription"
MAKE = "EXIF Make"
MODEL = "EXIF Model"
SOFTWARE = "EXIF Software"
JPEG_COMMENT = "JPEG comment"


@dataclass
class Entries:
    """Texts by key: PNG text chunks under their own keys, EXIF tags and JPEG comments
    under the names above. A text longer than MAX_TEXT_BYTES is kept in `cut` only, so
    no reader takes its start for the whole."""

    name: str  # the file, for messages
    texts: dict[str, str] = field(default_factory=dict)
    cut: dict[str, str] = field(default_factory=dict)  # key -> the text's start
    has_studio: bool = False  # Studio's own metadata is there (the core reads it)
    # The text hidden in the pixels' low bits, decoded only when asked for.
    hidden: Callable[[], str | None] | None = None

    def add(self, key: str, text: str, *, cut: bool = False) -> None:
        """Keep the first text found under `key`."""
        if key in self.texts or key in self.cut:
            return
        if cut:
            self.cut[key] = text
        else:
            self.texts[key] = text

    def get(self, key: str) -> str | None:
        return self.texts.get(key)

    def first(self, *keys: str) -> tuple[str, str] | None:
        """The first of `keys` present, with its text."""
        for key in keys:
            if key in self.texts:
                return key, self.texts[key]
        return None
