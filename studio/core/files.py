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


def umask() -> int:
    """The process's umask: from /proc on Linux, where reading it changes nothing; else
    by setting it and back (which a file made by another thread meanwhile may see)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o077)  # the strictest, should another thread make a file meanwhile
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path: Path, *, overwrite: bool = True) -> Iterator[BinaryIO]:
    """Open a temporary file beside `path`; on success fsync it and rename it into place.

    On any error the temporary file is removed and `path` is left as it was.
    With `overwrite=False` an existing `path` raises `FileExistsError` at the end.
    The file gets the permissions `open` would give it (the umask applies), not the
    temporary file's private 0600.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=path.suffix, dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            if os.name == "posix":
                os.fchmod(handle.fileno(), 0o666 & ~umask())
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
