"""The history database's schema: numbered migrations, each applied in its own transaction.

`PRAGMA user_version` records how many migrations a database has had. A migration is
never edited once released: a change to the schema is a new script at the end of
`MIGRATIONS`. A database whose version is higher than this code knows was written by a
newer Studio and is refused, untouched, rather than guessed at.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

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

MIGRATIONS: tuple[str, ...] = (_V1_TABLES, _V2_SEARCH)
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
