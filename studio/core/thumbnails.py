"""Thumbnails of history images, cached on disk (the UI keeps a memory cache in front)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from studio.core.files import atomic_write

THUMBNAIL_SIDE = 256


class ThumbnailCache:
    """`get(entry_id, source)` returns a thumbnail, made once and kept under `folder`.

    Safe to call from several worker threads; never call it on the GUI thread.
    """

    def __init__(self, folder: Path, side: int = THUMBNAIL_SIDE) -> None:
        self.folder = folder / str(side)
        self.side = side

    def path_for(self, entry_id: int) -> Path:
        return self.folder / f"{entry_id // 1000:04d}" / f"{entry_id}.webp"

    def get(self, entry_id: int, source: Path) -> Image.Image:
        """The thumbnail of `source` (at most `side` pixels across, RGB).

        Remade when the source is newer than the cached file; a damaged cache file is
        remade too. Raises OSError if the source cannot be read.
        """
        cached = self.path_for(entry_id)
        try:
            if cached.stat().st_mtime_ns >= source.stat().st_mtime_ns:
                with Image.open(cached) as image:
                    return image.convert("RGB")
        except (OSError, Image.DecompressionBombError):
            pass  # not cached yet, or unreadable: make it again
        thumbnail = self._make(source)
        # Lossless for images that were not scaled down: flat colours stay exact.
        options = {"lossless": True} if max(thumbnail.size) < self.side else {"quality": 85}
        cached.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(cached, lambda handle: thumbnail.save(handle, "WEBP", **options))
        return thumbnail

    def forget(self, entry_id: int) -> None:
        self.path_for(entry_id).unlink(missing_ok=True)

    def _make(self, source: Path) -> Image.Image:
        with Image.open(source) as image:
            image.draft("RGB", (self.side, self.side))  # JPEG: decode at reduced size
            thumbnail = image.convert("RGB")
        # Small pixel-art images (the built-in model's 64x64) stay as they are: the view
        # scales them up without blurring.
        thumbnail.thumbnail((self.side, self.side), Image.Resampling.LANCZOS)
        return thumbnail
