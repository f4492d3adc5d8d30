"""The history store: every image ever made, in SQLite beside the image files.

Layout under the data dir::

    history.sqlite3                               rows, tags, full-text index (WAL mode)
    images/YYYY/MM/DD/<job_key>-<rank>.png        the images, each carrying its metadata
    inputs/ab/<digest>.png                        input pictures, once each (`InputStore`)
    quarantine/...                                unknown files found under images/

Crash safety: an image file is written atomically (temp file, fsync, rename) *before*
its row is committed, so a row never points at a half-written file. A crash between
the two leaves a complete file without a row; `reconcile()` adopts it from the
metadata inside the file, so nothing is lost. `synchronous=NORMAL` in WAL mode keeps
every committed transaction across a process crash; after a power cut the last
commits may roll back, and reconciliation adopts their (already fsynced) files.

Threads: each thread gets its own connection (WAL lets the UI read while the worker
writes); saving and reconciling share a lock so that reconciliation never mistakes a
file that is being saved for an orphan. One process per data dir.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import itertools
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from PIL import Image

from studio.core.files import TEMP_PREFIX, atomic_open
from studio.core.history_schema import (
    LISTING_ORDER,
    Filters,
    HistorySchemaError,
    check_not_newer,
    fts_query,
    matches_are_common,
    migrate,
    select_ids,
)
from studio.core.inputs import INPUTS_DIR, InputStore, pixel_digest
from studio.core.metadata import ImageMetadata, read_metadata, save_image
from studio.core.request import GenerationRequest

__all__ = ["HistoryEntry", "HistorySchemaError", "HistoryStore", "ReconcileReport", "fts_query"]

log = logging.getLogger(__name__)

DATABASE_NAME = "history.sqlite3"
IMAGES_DIR = "images"
QUARANTINE_DIR = "quarantine"
BUSY_TIMEOUT_S = 10.0
_CHUNK = 500  # ids per `IN (...)` list, well under SQLite's variable limit
_ENTRY_COLUMNS = "id, created_at, path, job_key, favourite, missing, metadata_json, pixels_hash"
_INSERT = (
    "INSERT INTO images (created_at, job_key, rank, prompt, negative_prompt, seed, width,"
    " height, steps, guidance, backend, model, model_hash, sampler, score, path, metadata_json,"
    " pixels_hash, input_hash, mask_hash)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
UNUSED_INPUT_GRACE_S = 24 * 3600  # inputs no entry uses yet may belong to a job in flight
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")
_OUR_FILE_NAME = re.compile(r"^(?P<job>.+)-(?P<rank>\d+)(?:~\d+)?$")


@dataclass(frozen=True)
class HistoryEntry:
    """One image in the history: its row, with the metadata written into its file."""

    id: int
    created_at: float  # unix time
    path: Path  # absolute path of the image file
    metadata: ImageMetadata  # request (with this image's seed), sampler, model hash, score, rank
    job_key: str  # groups the images of one job
    favourite: bool = False
    tags: tuple[str, ...] = ()
    missing: bool = False  # the file was not found at the last reconciliation
    digest: str = ""  # of its pixels (`pixel_digest`); '' for entries made before lineage

    @property
    def request(self) -> GenerationRequest:
        return self.metadata.request


@dataclass(frozen=True)
class ReconcileReport:
    """What `HistoryStore.reconcile()` found and changed."""

    missing: tuple[int, ...]  # ids whose file is gone (flagged, not deleted)
    restored: tuple[int, ...]  # ids flagged missing earlier whose file is back
    adopted: tuple[int, ...]  # orphan files with our metadata: new rows
    quarantined: tuple[Path, ...]  # orphan files without it, moved to quarantine/
    temp_removed: int  # leftover temporary files from interrupted writes


class _Record(NamedTuple):
    """A row to insert: the metadata, the job, the file and the row's time."""

    metadata: ImageMetadata
    job_key: str
    path: str  # relative to the data dir, '/'-separated
    created_at: float  # the job's time: all images of a job share it
    digest: str = ""  # of the image's pixels

    def row(self) -> tuple[Any, ...]:
        m, r = self.metadata, self.metadata.request
        return (
            self.created_at,
            self.job_key,
            m.rank,
            r.prompt,
            r.negative_prompt,
            r.seed,
            r.width,
            r.height,
            r.steps,
            r.guidance,
            r.backend,
            r.model,
            m.model_hash,
            m.sampler,
            m.score,
            self.path,
            m.to_json(),
            self.digest,
            r.image.digest if r.image else "",
            r.mask.digest if r.mask else "",
        )


class HistoryStore:
    """Images and their rows; safe to use from several threads at once."""

    def __init__(self, data_dir: Path) -> None:
        """Open (creating or migrating) the history in `data_dir`.

        Raises `HistorySchemaError` for a database written by a newer Studio.
        """
        self.data_dir = Path(data_dir)
        self.images_dir = self.data_dir / IMAGES_DIR
        self.inputs = InputStore(self.data_dir / INPUTS_DIR)
        self.database_path = self.data_dir / DATABASE_NAME
        self.images_dir.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connections: builtins.list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._connections_lock = threading.Lock()
        self._files_lock = threading.RLock()  # save() vs reconcile()
        self._closed = False
        # Entries deleted in the app but not yet for good (its undo): left out of every
        # listing. Kept in memory only, so after a crash they are simply back.
        self._hidden: set[int] = set()
        try:
            conn = self._conn()
            check_not_newer(conn, self.database_path)  # before WAL or migrations touch it
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":  # e.g. some network file systems
                log.warning("history database not in WAL mode (%s): %s", mode, self.database_path)
            migrate(conn)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close every thread's connection. Call once the other threads stopped using it."""
        with self._connections_lock:
            self._closed = True
            for _thread, conn in self._connections:
                conn.close()
            self._connections.clear()

    # -- connections ------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise RuntimeError("the history store is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            with self._connections_lock:
                if self._closed:
                    raise RuntimeError("the history store is closed")
                self._close_dead_threads_connections()
                conn = self._connect()
                self._connections.append((threading.current_thread(), conn))
            self._local.conn = conn
        return conn

    def _close_dead_threads_connections(self) -> None:
        # Threads come and go (thread pools, tests): close the connections of the ones
        # that ended rather than keep them open until close().
        alive = []
        for thread, conn in self._connections:
            if thread.is_alive():
                alive.append((thread, conn))
            else:
                conn.close()
        self._connections = alive

    def _connect(self) -> sqlite3.Connection:
        # `timeout` is SQLite's busy timeout: wait for another writer instead of failing.
        # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
        # check_same_thread=False only so that close() may close every thread's connection.
        conn = sqlite3.connect(
            self.database_path,
            timeout=BUSY_TIMEOUT_S,
            isolation_level=None,
            check_same_thread=False,
        )
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")  # durable across process crashes in WAL
        return conn

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; IMMEDIATE takes the write lock up front, so it never
        fails half-way with SQLITE_BUSY on upgrading a read lock."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    # -- saving -----------------------------------------------------------------------

    def save(
        self, items: Sequence[tuple[Image.Image, ImageMetadata]], job_key: str
    ) -> builtins.list[HistoryEntry]:
        """Write the images of one job, then their rows in one transaction.

        All rows of a job share one `created_at` (the earliest image's, or now), so a
        job lists best-first by rank. Metadata with `created_at == 0` is stamped with it.
        If a write or the transaction fails the error propagates; files already
        complete are kept, and the next `reconcile()` adopts them (images are expensive
        to make, and every file carries its own metadata).
        """
        stamps = [m.created_at for _, m in items if m.created_at > 0]
        created_at = min(stamps) if stamps else time.time()
        records: builtins.list[_Record] = []
        with self._files_lock:
            for image, metadata in items:
                if metadata.created_at <= 0:
                    metadata = dataclasses.replace(metadata, created_at=created_at)
                for picture in metadata.request.inputs:  # again: its entries may be gone
                    self.inputs.keep(picture)
                path = self._write_image(image, metadata, job_key, created_at)
                digest = pixel_digest(image.convert("RGB"))
                records.append(_Record(metadata, job_key, path, created_at, digest))
            ids = self._insert(records)
        return [
            HistoryEntry(
                id_, created_at, self.data_dir / r.path, r.metadata, job_key, digest=r.digest
            )
            for id_, r in zip(ids, records, strict=True)
        ]

    def insert_records(
        self, records: Iterable[tuple[ImageMetadata, str, str]]
    ) -> builtins.list[int]:
        """Insert rows for (metadata, job key, path relative to the data dir), in one
        transaction, without writing any file; return the new ids.

        For files already under images/ (adoption, imports) and for benchmarks.
        """
        return self._insert(_Record(m, job, path, m.created_at) for m, job, path in records)

    def _insert(self, records: Iterable[_Record]) -> builtins.list[int]:
        """Insert rows and index their prompts, in one transaction."""
        records = builtins.list(records)
        with self._transaction() as conn:
            ids = [conn.execute(_INSERT, record.row()).lastrowid or 0 for record in records]
            conn.executemany(
                "INSERT OR IGNORE INTO image_controls (image_id, digest) VALUES (?, ?)",
                [
                    (id_, picture.digest)
                    for id_, r in zip(ids, records, strict=True)
                    for control in r.metadata.request.controls
                    for picture in control.inputs
                ],
            )
            conn.executemany(
                "INSERT INTO images_fts (rowid, prompt, negative_prompt) VALUES (?, ?, ?)",
                [
                    (id_, r.metadata.request.prompt, r.metadata.request.negative_prompt)
                    for id_, r in zip(ids, records, strict=True)
                ],
            )
        return ids

    def _write_image(
        self, image: Image.Image, metadata: ImageMetadata, job_key: str, created_at: float
    ) -> str:
        """Write one PNG atomically under a free name; return its relative path."""
        day = time.strftime("%Y/%m/%d", time.localtime(created_at))
        folder = self.images_dir / day
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{_safe_name(job_key)}-{metadata.rank}"
        for n in itertools.count(1):
            name = f"{stem}.png" if n == 1 else f"{stem}~{n}.png"
            relative = f"{IMAGES_DIR}/{day}/{name}"
            if (folder / name).exists() or self._path_known(relative):
                continue
            try:
                with atomic_open(folder / name, overwrite=False) as handle:
                    save_image(image, handle, "png", metadata)
            except FileExistsError:  # another writer took the name meanwhile
                continue
            return relative
        raise AssertionError("unreachable")

    def _path_known(self, relative: str) -> bool:
        """Whether a row (maybe of a missing file) or a forgotten file holds the name."""
        sql = "SELECT 1 FROM images WHERE path = ? UNION ALL SELECT 1 FROM forgotten WHERE path = ?"
        return self._conn().execute(sql, (relative, relative)).fetchone() is not None

    # -- reading ----------------------------------------------------------------------

    def damage(self) -> str | None:
        """What SQLite's quick check finds wrong with the database, or None (136 ms
        at 100,200 entries: bench/bench_history.py)."""
        found = [row[0] for row in self._conn().execute("PRAGMA quick_check")]
        return None if found == ["ok"] else "; ".join(found[:3])

    def id_of(self, relative_path: str) -> int | None:
        """The entry whose file is at `relative_path` (under the data folder), if any."""
        row = self._conn().execute("SELECT id FROM images WHERE path = ?", (relative_path,))
        found = row.fetchone()
        return int(found[0]) if found else None

    def get(self, entry_id: int) -> HistoryEntry | None:
        """The entry with this id, or None."""
        sql = f"SELECT {_ENTRY_COLUMNS} FROM images WHERE id = ?"
        entries = self._entries(self._conn().execute(sql, (entry_id,)).fetchall())
        return entries[0] if entries else None

    def made_from(self, entry: HistoryEntry) -> builtins.list[HistoryEntry]:
        """The entries made before `entry` whose pixels are its input picture, oldest
        (the original) first: usually one, more when the same pixels were made again."""
        picture = entry.request.image
        if picture is None:
            return []
        sql = f"SELECT {_ENTRY_COLUMNS} FROM images WHERE pixels_hash = ? AND id < ? ORDER BY id"
        return self._entries(self._conn().execute(sql, (picture.digest, entry.id)).fetchall())

    def made_with(self, entry: HistoryEntry) -> builtins.list[HistoryEntry]:
        """The entries made after `entry` from its pixels as their input picture, oldest
        first."""
        if not entry.digest:
            return []
        sql = f"SELECT {_ENTRY_COLUMNS} FROM images WHERE input_hash = ? AND id > ? ORDER BY id"
        return self._entries(self._conn().execute(sql, (entry.digest, entry.id)).fetchall())

    def list(
        self,
        *,
        offset: int = 0,
        limit: int = 200,
        favourites_only: bool = False,
        backend: str | None = None,
        model: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> builtins.list[HistoryEntry]:
        """A page of entries, newest first (within a job: best rank first).

        `since` is inclusive and `until` exclusive (unix times).
        """
        filters = Filters(favourites_only, backend, model, since, until)
        return self._page(None, filters, offset, limit)

    def search(
        self, query: str, *, offset: int = 0, limit: int = 200, **filters: Any
    ) -> builtins.list[HistoryEntry]:
        """Entries whose prompt or negative prompt hold every word of `query`, newest
        first. The last word matches as a prefix; case and diacritics are ignored.
        User text never raises; a query with no words lists everything.
        `filters` are those of `list()`.
        """
        return self._page(fts_query(query), Filters(**filters), offset, limit)

    def count(self, *, query: str = "", **filters: Any) -> int:
        """How many entries `search(query, **filters)` (or `list` without a query) finds."""
        select, args = select_ids(
            fts_query(query), self._shown(Filters(**filters)), walk_index=False
        )
        return int(self._conn().execute(f"SELECT count(*) FROM ({select})", args).fetchone()[0])

    def _page(
        self, match: str | None, filters: Filters, offset: int, limit: int
    ) -> builtins.list[HistoryEntry]:
        offset, limit = max(0, offset), max(0, limit)
        filters = self._shown(filters)
        conn = self._conn()
        walk = match is not None and matches_are_common(conn, match, offset + limit)
        select, args = select_ids(match, filters, walk_index=walk)
        # Page the ids on a covering index first, then read only those rows: skipping
        # `offset` index entries costs half as much as skipping table rows.
        rows = conn.execute(
            f"SELECT {_ENTRY_COLUMNS} FROM images WHERE id IN"
            f" ({select} {LISTING_ORDER} LIMIT ? OFFSET ?) {LISTING_ORDER}",
            [*args, limit, offset],
        ).fetchall()
        return self._entries(rows)

    def _entries(self, rows: Sequence[tuple[Any, ...]]) -> builtins.list[HistoryEntry]:
        tags = self._tags_of([row[0] for row in rows])
        entries = []
        for id_, created_at, path, job_key, favourite, missing, metadata_json, digest in rows:
            try:
                metadata = ImageMetadata.from_json(metadata_json)
            except Exception:  # one unreadable row must not break the whole gallery
                log.warning("history entry %s has unreadable metadata; skipped", id_, exc_info=True)
                continue
            entries.append(
                HistoryEntry(
                    id_,
                    created_at,
                    self.data_dir / path,
                    metadata,
                    job_key,
                    bool(favourite),
                    tags.get(id_, ()),
                    bool(missing),
                    digest,
                )
            )
        return entries

    def _tags_of(self, ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
        found: dict[int, builtins.list[str]] = {}
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            for image_id, tag in self._conn().execute(
                f"SELECT image_id, tag FROM tags WHERE image_id IN ({marks}) ORDER BY tag", chunk
            ):
                found.setdefault(image_id, []).append(tag)
        return {image_id: tuple(tags) for image_id, tags in found.items()}

    # -- changing ---------------------------------------------------------------------

    def set_favourite(self, entry_id: int, favourite: bool) -> None:
        """Mark or unmark an entry as a favourite (no-op for an unknown id)."""
        with self._transaction() as conn:
            conn.execute("UPDATE images SET favourite = ? WHERE id = ?", (int(favourite), entry_id))

    def add_tags(self, entry_id: int, tags: Sequence[str]) -> None:
        """Add tags (whitespace trimmed, blanks ignored) to an entry (no-op if unknown)."""
        with self._transaction() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO tags (image_id, tag) SELECT id, ? FROM images WHERE id = ?",
                [(tag, entry_id) for tag in _clean_tags(tags)],
            )

    def remove_tags(self, entry_id: int, tags: Sequence[str]) -> None:
        """Remove tags from an entry; tags it does not have are ignored."""
        with self._transaction() as conn:
            conn.executemany(
                "DELETE FROM tags WHERE image_id = ? AND tag = ?",
                [(entry_id, tag) for tag in _clean_tags(tags)],
            )

    def hide(self, entry_ids: Iterable[int]) -> None:
        """Leave entries out of listings and counts until `unhide` or `delete` (in this
        process only: a delete the app could not finish never loses an image)."""
        self._hidden.update(int(i) for i in entry_ids)

    def unhide(self, entry_ids: Iterable[int]) -> None:
        self._hidden.difference_update(int(i) for i in entry_ids)

    def _shown(self, filters: Filters) -> Filters:
        return dataclasses.replace(filters, hidden=tuple(sorted(self._hidden)))

    def delete(self, entry_ids: Sequence[int], *, delete_files: bool = True) -> int:
        """Delete entries (their tags too); return how many rows went.

        Files are removed after the commit, so a failure never leaves a row without its
        file. Their paths are remembered as forgotten, so that reconciliation does not
        adopt back a file kept with `delete_files=False` (e.g. the UI moves it to the
        system trash itself) or one that could not be removed.
        """
        ids = builtins.list(dict.fromkeys(int(i) for i in entry_ids))
        paths: builtins.list[str] = []
        inputs: set[str] = set()
        deleted = 0
        with self._transaction() as conn:
            for chunk in _chunks(ids):
                marks = ",".join("?" * len(chunk))
                found = conn.execute(
                    f"SELECT path, input_hash, mask_hash FROM images WHERE id IN ({marks})", chunk
                ).fetchall()
                found += conn.execute(  # (no path)
                    f"SELECT '', digest FROM image_controls WHERE image_id IN ({marks})", chunk
                ).fetchall()
                deleted += conn.execute(f"DELETE FROM images WHERE id IN ({marks})", chunk).rowcount
                paths += [row[0] for row in found if row[0]]
                inputs |= {digest for row in found for digest in row[1:] if digest}
            unused = {digest for digest in inputs if not _input_used(conn, digest)}
            now = time.time()
            conn.executemany(
                "INSERT OR REPLACE INTO forgotten (path, deleted_at) VALUES (?, ?)",
                [(path, now) for path in paths],
            )
        if delete_files:
            for path in paths:
                try:
                    (self.data_dir / path).unlink(missing_ok=True)
                except OSError as error:
                    log.warning("could not delete %s: %s", path, error)
        self.inputs.remove(unused)  # pictures no entry uses any more
        self.unhide(ids)
        return deleted

    def remove_unused_inputs(self, older_than: float = UNUSED_INPUT_GRACE_S) -> int:
        """Delete stored input pictures that no entry uses and that are older than
        `older_than` seconds (younger ones may belong to a job still queued or running,
        whose results record them when saved). Returns how many went."""
        cutoff = time.time() - older_than
        stale = set()
        for path in self.inputs.folder.glob("*/*.png"):
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff and not _input_used(self._conn(), path.stem):
                    stale.add(path.stem)
        return self.inputs.remove(stale)

    # -- reconciliation ---------------------------------------------------------------

    def reconcile(self) -> ReconcileReport:
        """Bring rows and files back in step (run at start-up).

        Rows whose file is gone are flagged missing (not deleted) and unflagged when it
        is back. Files under images/ without a row are adopted when they carry our
        metadata, else moved to quarantine/. Leftover temporary files are deleted.
        """
        with self._files_lock:
            files, temp_removed = self._scan_images()
            rows = self._conn().execute("SELECT id, path, missing FROM images").fetchall()
            forgotten = {r[0] for r in self._conn().execute("SELECT path FROM forgotten")}
            known = {path for _, path, _ in rows}
            missing = [i for i, path, flag in rows if not flag and path not in files]
            restored = [i for i, path, flag in rows if flag and path in files]
            orphans = sorted(files - known - forgotten)
            to_adopt, quarantined = self._sort_orphans(orphans)
            with self._transaction() as conn:
                for flag, ids in ((1, missing), (0, restored)):
                    for chunk in _chunks(ids):
                        marks = ",".join("?" * len(chunk))
                        conn.execute(
                            f"UPDATE images SET missing = ? WHERE id IN ({marks})", [flag, *chunk]
                        )
                conn.executemany(  # forget files that are gone for good
                    "DELETE FROM forgotten WHERE path = ?",
                    [(p,) for p in forgotten if p not in files],
                )
            adopted = self._insert(to_adopt)
        return ReconcileReport(
            tuple(missing), tuple(restored), tuple(adopted), tuple(quarantined), temp_removed
        )

    def _scan_images(self) -> tuple[set[str], int]:
        """Relative paths of the files under images/; delete leftover temp files."""
        files: set[str] = set()
        temp_removed = 0
        for folder, _dirs, names in os.walk(self.images_dir):
            relative = Path(folder).relative_to(self.data_dir).as_posix()
            for name in names:
                if name.startswith(TEMP_PREFIX):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(folder, name))
                        temp_removed += 1
                elif not name.startswith("."):  # .DS_Store and the like are not ours
                    files.add(f"{relative}/{name}")
        return files, temp_removed

    def _sort_orphans(
        self, orphans: Iterable[str]
    ) -> tuple[builtins.list[_Record], builtins.list[Path]]:
        """Read each orphan: ours → a record to insert, anything else → quarantined."""
        records: builtins.list[_Record] = []
        quarantined: builtins.list[Path] = []
        for relative in orphans:
            path = self.data_dir / relative
            try:
                metadata = read_metadata(path).studio
            except Exception:  # unreadable, not an image, a decompression bomb...
                metadata = None
            if metadata is None:
                quarantined.append(self._quarantine(relative))
                continue
            match = _OUR_FILE_NAME.match(path.stem)
            job_key = match["job"] if match else path.stem
            made = metadata.created_at if metadata.created_at > 0 else path.stat().st_mtime
            records.append(_Record(metadata, job_key, relative, made, _digest_of(path)))
        return _one_time_per_job(records), quarantined

    def _quarantine(self, relative: str) -> Path:
        """Move a file to quarantine/, keeping its folders; never overwrite."""
        target = self.data_dir / QUARANTINE_DIR / Path(relative).relative_to(IMAGES_DIR)
        target.parent.mkdir(parents=True, exist_ok=True)
        candidate = target
        for n in itertools.count(2):
            if not candidate.exists():
                break
            candidate = target.with_name(f"{target.stem}~{n}{target.suffix}")
        os.replace(self.data_dir / relative, candidate)
        log.info("moved unknown file %s to %s", relative, candidate)
        return candidate


def _digest_of(path: Path) -> str:
    """The pixel digest of an image file ('' when it cannot be decoded)."""
    try:
        with Image.open(path) as image:
            return pixel_digest(image.convert("RGB"))
    except Exception:  # an adopted file that reads its metadata but not its pixels
        return ""


def _input_used(conn: sqlite3.Connection, digest: str) -> bool:
    sql = (
        "SELECT 1 FROM images WHERE input_hash = ?"
        " UNION ALL SELECT 1 FROM images WHERE mask_hash = ?"
        " UNION ALL SELECT 1 FROM image_controls WHERE digest = ? LIMIT 1"
    )
    return conn.execute(sql, (digest, digest, digest)).fetchone() is not None


def _one_time_per_job(records: list[_Record]) -> list[_Record]:
    """Give the adopted images of one job the job's earliest time, as save() does."""
    first: dict[str, float] = {}
    for r in records:
        first[r.job_key] = min(first.get(r.job_key, r.created_at), r.created_at)
    return [r._replace(created_at=first[r.job_key]) for r in records]


def _safe_name(job_key: str) -> str:
    """A file-name-safe form of a job key (no separators, not hidden, not too long)."""
    return _UNSAFE_NAME_CHARS.sub("_", job_key).lstrip(".")[:80] or "job"


def _clean_tags(tags: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(" ".join(t.split()) for t in tags if t.strip()))


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
