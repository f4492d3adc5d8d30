"""The history store: every image ever made, in SQLite beside the image files.

CONTRACT (to be implemented).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from studio.core.metadata import ImageMetadata
from studio.core.request import GenerationRequest


@dataclass(frozen=True)
class HistoryEntry:
    id: int
    created_at: float  # unix time
    path: Path  # absolute path of the image file
    metadata: ImageMetadata  # request (with this image's seed), sampler, model hash, score, rank
    job_key: str  # groups the images of one job
    favourite: bool = False
    tags: tuple[str, ...] = ()
    missing: bool = False  # the file was not found at the last reconciliation

    @property
    def request(self) -> GenerationRequest:
        return self.metadata.request


@dataclass(frozen=True)
class ReconcileReport:
    missing: tuple[int, ...]  # ids whose file is gone (flagged, not deleted)
    restored: tuple[int, ...]  # ids flagged missing earlier whose file is back
    adopted: tuple[int, ...]  # orphan files with our metadata: new rows
    quarantined: tuple[Path, ...]  # orphan files without it, moved to quarantine/
    temp_removed: int  # leftover temporary files from interrupted writes


class HistoryStore:
    def __init__(self, data_dir: Path) -> None: ...
    def close(self) -> None: ...
    def save(self, items: Sequence[tuple[Image.Image, ImageMetadata]], job_key: str) -> list[HistoryEntry]: ...
    def get(self, entry_id: int) -> HistoryEntry | None: ...
    def list(self, *, offset: int = 0, limit: int = 200, favourites_only: bool = False,
             backend: str | None = None, model: str | None = None,
             since: float | None = None, until: float | None = None) -> list[HistoryEntry]: ...
    def search(self, query: str, *, offset: int = 0, limit: int = 200, **filters) -> list[HistoryEntry]: ...
    def count(self, **filters) -> int: ...
    def set_favourite(self, entry_id: int, favourite: bool) -> None: ...
    def add_tags(self, entry_id: int, tags: Sequence[str]) -> None: ...
    def remove_tags(self, entry_id: int, tags: Sequence[str]) -> None: ...
    def delete(self, entry_ids: Sequence[int], *, delete_files: bool = True) -> int: ...
    def reconcile(self) -> ReconcileReport: ...
