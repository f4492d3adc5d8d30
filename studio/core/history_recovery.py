"""A history database SQLite cannot open: kept aside as a backup, rebuilt from the images.

Every image file carries its full metadata, so a new database adopts them all at the
next reconciliation (`HistoryStore.reconcile`); what lives only in the database
(favourites, tags) is read back from the damaged file where SQLite still can, row by row.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from studio.core.history import DATABASE_NAME, HistorySchemaError, HistoryStore

log = logging.getLogger(__name__)
SIDE_FILES = ("-wal", "-shm")


@dataclass(frozen=True)
class Recovery:
    """What was done about a damaged database, to tell the user."""

    backup: Path  # the damaged file, kept
    error: str  # what SQLite said
    images: int  # entries rebuilt from the image files
    favourites: int  # favourites read back from the damaged file

    def message(self) -> str:
        return (
            f"The history database was damaged ({self.error}). It was kept as "
            f"{self.backup.name}, and {self.images} images were recovered from their "
            f"files ({self.favourites} favourites)."
        )


def open_history(data_dir: Path) -> tuple[HistoryStore, Recovery | None]:
    """The history store; if its database is damaged, a rebuilt one and what was done.

    A database from a newer Studio is not damage: HistorySchemaError propagates."""
    try:
        store = HistoryStore(data_dir)
    except HistorySchemaError:
        raise
    except sqlite3.DatabaseError as error:  # not a database at all, a torn header
        return _rebuild(Path(data_dir), str(error))
    try:
        damage = store.damage()  # pages beyond the header
    except sqlite3.DatabaseError as error:
        damage = str(error)
    if damage is None:
        return store, None
    store.close()
    return _rebuild(Path(data_dir), damage)


def _rebuild(data_dir: Path, error: str) -> tuple[HistoryStore, Recovery]:
    database = data_dir / DATABASE_NAME
    backup = database.with_name(f"{DATABASE_NAME}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    os.replace(database, backup)
    for suffix in SIDE_FILES:  # the WAL belongs to the damaged file
        with contextlib.suppress(FileNotFoundError):
            os.replace(f"{database}{suffix}", f"{backup}{suffix}")
    log.error("history database damaged (%s): kept as %s, rebuilding", error, backup)
    store = HistoryStore(data_dir)
    report = store.reconcile()
    favourites = 0
    for path in _favourite_paths(backup):
        entry_id = store.id_of(path)
        if entry_id is not None:
            store.set_favourite(entry_id, True)
            favourites += 1
    return store, Recovery(backup, error, len(report.adopted), favourites)


def _favourite_paths(backup: Path) -> list[str]:
    """The paths of favourite images, as far as the damaged file still tells."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{backup}?mode=ro", uri=True)) as conn:
            return [row[0] for row in conn.execute("SELECT path FROM images WHERE favourite")]
    except sqlite3.DatabaseError:
        return []
