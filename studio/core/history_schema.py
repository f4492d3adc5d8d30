"""The history database's schema, its migrations, and the SQL that lists and searches it.

`PRAGMA user_version` records how many migrations a database has had; each is applied
in its own transaction. A migration is never edited once released: a change to the
schema is a new script at the end of `MIGRATIONS`. A database whose version is higher
than this code knows was written by a newer Studio and is refused, untouched.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# 1: images, tags and forgotten files; indexes for newest-first listing and the filters.
# Every listing index ends in the listing order (created_at DESC, rank, id DESC), so a
# page is an index walk that stops after `limit` rows instead of a sort.
_V1_TABLES = """
CREATE TABLE images (
    id              INTEGER PRIMARY KEY,
    created_at      REAL    NOT NULL,
    job_key         TEXT    NOT NULL,
    rank            INTEGER NOT NULL DEFAULT 0,
    prompt          TEXT    NOT NULL,
    negative_prompt TEXT    NOT NULL DEFAULT '',
    seed            INTEGER NOT NULL,
    width           INTEGER NOT NULL,
    height          INTEGER NOT NULL,
    steps           INTEGER NOT NULL,
    guidance        REAL    NOT NULL,
    backend         TEXT    NOT NULL DEFAULT '',
    model           TEXT    NOT NULL DEFAULT '',
    model_hash      TEXT    NOT NULL DEFAULT '',
    sampler         TEXT    NOT NULL DEFAULT '',
    score           REAL,
    favourite       INTEGER NOT NULL DEFAULT 0,
    missing         INTEGER NOT NULL DEFAULT 0,
    path            TEXT    NOT NULL UNIQUE,  -- relative to the data dir, '/'-separated
    metadata_json   TEXT    NOT NULL
);
CREATE INDEX images_newest    ON images (created_at DESC, rank, id DESC);
CREATE INDEX images_favourite ON images (favourite, created_at DESC, rank, id DESC);
CREATE INDEX images_backend   ON images (backend, created_at DESC, rank, id DESC);
CREATE INDEX images_model     ON images (model, created_at DESC, rank, id DESC);
CREATE INDEX images_job       ON images (job_key);

CREATE TABLE tags (
    image_id INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    tag      TEXT    NOT NULL,
    PRIMARY KEY (image_id, tag)
) WITHOUT ROWID;
CREATE INDEX tags_by_tag ON tags (tag, image_id);

-- Files whose rows were deleted but which were kept on disk (or could not be removed):
-- reconciliation must not adopt them back.
CREATE TABLE forgotten (
    path       TEXT PRIMARY KEY,
    deleted_at REAL NOT NULL
) WITHOUT ROWID;
"""

# 2: full-text search over both prompts. External content (the text lives once, in
# `images`); `rebuild` indexes the rows a v1 database already has. The prefix indexes
# make 1- to 3-letter as-you-type prefixes cheap. Deletes and updates are followed by
# triggers; new rows are indexed by the store's insert, in the same transaction: an
# insert trigger makes FTS5 flush its pending terms for every row (5x slower in bulk).
_V2_SEARCH = """
CREATE VIRTUAL TABLE images_fts USING fts5 (
    prompt, negative_prompt,
    content = 'images', content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2',
    prefix = '1 2 3'
);
CREATE TRIGGER images_fts_delete AFTER DELETE ON images BEGIN
    INSERT INTO images_fts (images_fts, rowid, prompt, negative_prompt)
    VALUES ('delete', old.id, old.prompt, old.negative_prompt);
END;
CREATE TRIGGER images_fts_update AFTER UPDATE OF prompt, negative_prompt ON images BEGIN
    INSERT INTO images_fts (images_fts, rowid, prompt, negative_prompt)
    VALUES ('delete', old.id, old.prompt, old.negative_prompt);
    INSERT INTO images_fts (rowid, prompt, negative_prompt)
    VALUES (new.id, new.prompt, new.negative_prompt);
END;
INSERT INTO images_fts (images_fts) VALUES ('rebuild');
"""

# 3: lineage. Each image's own pixel digest, and the digests of the input picture and
# mask it was made from (`studio.core.inputs`): a result whose input is a history image's
# pixels was made from that image, found by digest even after an export and re-import.
# Rows from before have no pixel digest: they show no children (not backfilled, to keep
# the migration instant on a large history).
_V3_LINEAGE = """
ALTER TABLE images ADD COLUMN pixels_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE images ADD COLUMN input_hash  TEXT NOT NULL DEFAULT '';
ALTER TABLE images ADD COLUMN mask_hash   TEXT NOT NULL DEFAULT '';
CREATE INDEX images_pixels ON images (pixels_hash) WHERE pixels_hash != '';
CREATE INDEX images_input  ON images (input_hash)  WHERE input_hash != '';
CREATE INDEX images_mask   ON images (mask_hash)   WHERE mask_hash != '';
"""

# 4: the other input pictures an image was made with, ControlNets' images and maps, so
# that they are kept while an entry uses them (and go with the last one).
_V4_CONTROLS = """
CREATE TABLE image_controls (
    image_id INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    digest   TEXT NOT NULL,
    PRIMARY KEY (image_id, digest)
) WITHOUT ROWID;
CREATE INDEX image_controls_digest ON image_controls (digest);
"""

MIGRATIONS: tuple[str, ...] = (_V1_TABLES, _V2_SEARCH, _V3_LINEAGE, _V4_CONTROLS)
LATEST_VERSION = len(MIGRATIONS)


class HistorySchemaError(RuntimeError):
    """The database cannot be used by this version of Studio; the message says why."""


def schema_version(conn: sqlite3.Connection) -> int:
    """The number of migrations applied to the database behind `conn`."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def check_not_newer(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse a database written by a newer Studio before anything touches it."""
    version = schema_version(conn)
    if version > LATEST_VERSION:
        raise HistorySchemaError(
            f"The history database {path} has schema version {version}, but this version "
            f"of Studio only knows versions up to {LATEST_VERSION}: it was written by a "
            "newer Studio. Update Studio, or choose another data folder (--data-dir)."
        )


def migrate(conn: sqlite3.Connection, target: int = LATEST_VERSION) -> list[int]:
    """Apply the migrations the database lacks, up to `target`; return their numbers.

    `conn` must be in autocommit mode (`isolation_level=None`) so that each migration,
    with the `user_version` bump that records it, is one explicit transaction: a
    failure leaves the database at the last version that completed. The version is read
    again under the write lock, so two processes opening a new database at once
    apply each migration once.
    """
    applied: list[int] = []
    for number in range(1, target + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            if schema_version(conn) < number:
                for statement in split_statements(MIGRATIONS[number - 1]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number:d}")
                applied.append(number)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return applied


def split_statements(script: str) -> list[str]:
    """Split an SQL script into statements (trigger bodies stay whole).

    `executescript` would commit the surrounding transaction, so scripts are run one
    statement at a time instead. Statements must end at a line end.
    """
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete SQL statement at the end of a migration: {pending!r}")
    return statements


# -- listing and search ---------------------------------------------------------------

# Newest first, a job best-rank first; matched by every listing index. Qualified because
# FTS5 tables have a hidden `rank` column.
LISTING_ORDER = "ORDER BY images.created_at DESC, images.rank, images.id DESC"
SORT_VS_WALK_STEP = 10  # reading and sorting a match costs ~10 steps of an index walk
_MATCHING_IDS = "SELECT rowid FROM images_fts WHERE images_fts MATCH ?"


@dataclass(frozen=True)
class Filters:
    """The gallery's filters, as SQL conditions on `images`."""

    favourites_only: bool = False
    backend: str | None = None
    model: str | None = None
    since: float | None = None  # inclusive
    until: float | None = None  # exclusive
    hidden: tuple[int, ...] = ()  # ids left out (deleted, waiting for an undo)

    def conditions(self) -> tuple[list[str], list[Any]]:
        sql: list[str] = []
        args: list[Any] = []
        if self.hidden:
            sql.append(f"images.id NOT IN ({','.join('?' * len(self.hidden))})")
            args.extend(self.hidden)
        if self.favourites_only:
            sql.append("images.favourite = 1")
        for column, value in (("backend", self.backend), ("model", self.model)):
            if value is not None:
                sql.append(f"images.{column} = ?")
                args.append(value)
        if self.since is not None:
            sql.append("images.created_at >= ?")
            args.append(self.since)
        if self.until is not None:
            sql.append("images.created_at < ?")
            args.append(self.until)
        return sql, args


def fts_query(text: str) -> str | None:
    """Turn what a user typed into a safe FTS5 query; None when it holds no words.

    Every whitespace-separated term is quoted, so `"`, `AND`, `NEAR`, `*`, `-` or `:`
    are searched as text, never parsed as syntax. Terms must all match (in either
    prompt). The last term is a prefix unless the text ends in a space, for
    search-as-you-type.
    """
    terms = [term for term in text.split() if any(ch.isalnum() for ch in term)]
    if not terms:
        return None
    quoted = ['"' + term.replace('"', '""') + '"' for term in terms]
    if not text[-1].isspace() and text.split()[-1] == terms[-1]:
        quoted[-1] += "*"
    return " ".join(quoted)


def matches_are_common(conn: sqlite3.Connection, match: str, wanted: int) -> bool:
    """Whether walking the newest-first index until `wanted` matches turned up beats
    sorting every match by time.

    A walk costs about wanted * rows / matches index steps; sorting costs a row read
    per match, ~10 index steps: the walk wins once matches exceed
    sqrt(wanted * rows / 10). SQLite's planner cannot know how many rows an FTS query
    matches, so count them here, stopping at that threshold.
    """
    rows = conn.execute("SELECT max(id) FROM images").fetchone()[0] or 0
    threshold = 1 + math.isqrt(wanted * rows // SORT_VS_WALK_STEP)
    found = conn.execute(
        "SELECT count(*) FROM (SELECT 1 FROM images_fts WHERE images_fts MATCH ? LIMIT ?)",
        (match, threshold),
    ).fetchone()[0]
    return bool(found >= threshold)


def select_ids(match: str | None, filters: Filters, *, walk_index: bool) -> tuple[str, list[Any]]:
    """SQL selecting the ids of the images that pass `filters` and the FTS `match`."""
    conditions, args = filters.conditions()
    source = "images"
    if match is not None and walk_index:
        # `+` hides the rowid from the planner: it walks a listing index in order and
        # tests each id against the matches, stopping after a page.
        conditions.insert(0, f"+images.id IN ({_MATCHING_IDS})")
        args.insert(0, match)
    elif match is not None:
        # CROSS JOIN fixes the order: every match first, one row lookup each, then a sort.
        source = "images_fts CROSS JOIN images ON images.id = images_fts.rowid"
        conditions.insert(0, "images_fts MATCH ?")
        args.insert(0, match)
    where = " WHERE " + " AND ".join(conditions) if conditions else ""
    return f"SELECT images.id FROM {source}{where}", args
