"""Crash-safe file writes: a file is either complete at its final name or absent."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

TEMP_PREFIX = ".tmp-"


def fsync_dir(directory: Path) -> None:
    """Make a rename in `directory` durable (no-op where directories can't be opened)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: Path, *, overwrite: bool = True) -> Iterator[BinaryIO]:
    """Open a temporary file beside `path`; on success fsync it and rename it into place.

    On any error the temporary file is removed and `path` is left as it was.
    With `overwrite=False` an existing `path` raises `FileExistsError` at the end.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=path.suffix, dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if `path` exists, unlike rename
            tmp.unlink()
        fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(
    path: Path, write: Callable[[BinaryIO], object], *, overwrite: bool = True
) -> None:
    """Write a file with `write(handle)` so that it is complete or absent, even after a crash."""
    with atomic_open(path, overwrite=overwrite) as handle:
        write(handle)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda handle: handle.write(data))
