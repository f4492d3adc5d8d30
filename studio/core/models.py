"""The model library: models in the user's model folders and models added one by one.

Each model shows its format, size and short hash (its architecture is for the backends
that load it to say). The short hash is the first 10 hex digits of its file's SHA-256, as
other local generators show theirs, so the hash written into an image's metadata matches
theirs. A folder's hash is the SHA-256 of its files' own SHA-256s in path order. Hashes
are cached by path, size and modification time, and computed only where needed: finding
a model by name or path hashes nothing, and the engine hashes a job's models in the
background while it loads them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.core.files import atomic_write_bytes
from studio.core.model_files import SAFETENSORS, ModelFile, ModelFileError, identify, sniff

log = logging.getLogger(__name__)
SHORT_HASH = 10
LORA_HASH = 12
_CHUNK = 1 << 20


@dataclass(frozen=True)
class LibraryEntry:
    """A model found in the library, or a file that looked like one and why it can't be used."""

    path: Path
    info: ModelFile | None
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        if self.info is None:
            return {"path": str(self.path), "error": self.error}
        return self.info.to_json()


Progress = Callable[[int, int], None]  # (bytes hashed, bytes in all); raising stops it


class HashCache:
    """SHA-256 of files, kept in a JSON file and trusted while size and mtime match.

    Safe across threads and processes (the app and its worker process share the file):
    one thread of a process hashes a file while others asking for it wait for its answer;
    a miss reads the file again (another process may have hashed it since); a write
    merges with what is on disk, so no process drops another's entries.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._known = self._read()

    def cached(self, file: Path, body_only: bool = False) -> str | None:
        """The hash if known for the file as it is now; never hashes."""
        return self._lookup(*_key(file, body_only))

    def sha256(self, file: Path, body_only: bool = False, progress: Progress | None = None) -> str:
        """The file's SHA-256; with `body_only`, of a safetensors file's tensors after
        its header (A1111's hash of LoRAs, which Civitai looks them up by: "AutoV3")."""
        key, stamp = _key(file, body_only)
        found = self._lookup(key, stamp)
        if found is not None:
            return found
        with _hashing(key):
            found = self._lookup(key, stamp)  # hashed by another thread meanwhile
            if found is not None:
                return found
            digest = file_sha256(file, body_only, progress)
            self._store(key, {"stamp": stamp, "sha256": digest})
        return digest

    def _lookup(self, key: str, stamp: list[int]) -> str | None:
        with _STATE:
            known = self._known.get(key)
            if not _fresh(known, stamp):
                self._known.update(self._read())
                known = self._known.get(key)
        return str(known["sha256"]) if _fresh(known, stamp) else None

    def _store(self, key: str, entry: dict[str, Any]) -> None:
        with _STATE:
            on_disk = self._read()
            on_disk[key] = entry
            self._known.update(on_disk)
            try:
                atomic_write_bytes(self.path, json.dumps(on_disk, indent=1).encode())
            except OSError as error:  # a cache: computing again next time is fine
                log.warning("cannot write the hash cache %s: %s", self.path, error)

    def _read(self) -> dict[str, Any]:
        try:
            known = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return known if isinstance(known, dict) else {}


_STATE = threading.Lock()  # the caches' memory and files: held for moments only
_BUSY: dict[str, threading.Lock] = {}  # a lock per file being hashed in this process


@contextlib.contextmanager
def _hashing(key: str) -> Iterator[None]:
    with _STATE:
        lock = _BUSY.setdefault(key, threading.Lock())
    with lock:
        yield


def _key(file: Path, body_only: bool) -> tuple[str, list[int]]:
    stat = file.stat()
    key = str(file.resolve()) + ("#body" if body_only else "")
    return key, [stat.st_size, stat.st_mtime_ns]


def _fresh(known: object, stamp: list[int]) -> bool:
    return isinstance(known, dict) and known.get("stamp") == stamp and "sha256" in known


def file_sha256(file: Path, body_only: bool = False, progress: Progress | None = None) -> str:
    """Read and hash the file (the slow part, seconds for a big model: cached above)."""
    digest = hashlib.sha256()
    total = file.stat().st_size
    with file.open("rb") as handle:
        if body_only:
            handle.seek(8 + int.from_bytes(handle.read(8), "little"))
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            if progress is not None:
                progress(handle.tell(), total)
    return digest.hexdigest()


class ModelLibrary:
    def __init__(self, folders: Sequence[Path], added: Sequence[Path], hash_cache: Path) -> None:
        self.folders = [Path(f) for f in folders]
        self.added = [Path(p) for p in added]
        self.hashes = HashCache(hash_cache)

    def __reduce__(self) -> tuple[Any, ...]:
        """Sent to a worker process as what it is made of; the worker reads its own cache."""
        return (ModelLibrary, (self.folders, self.added, self.hashes.path))

    def entries(self) -> list[LibraryEntry]:
        """Every model in the folders (their top-level files and subfolders) and every
        added one. Files that are plainly not models are skipped; refused ones are kept
        with the reason, so the user sees why a checkpoint is missing."""
        found: dict[Path, LibraryEntry] = {}
        for path in [*self._candidates(), *self.added]:
            resolved = path.resolve()
            if resolved in found:
                continue
            try:
                found[resolved] = LibraryEntry(path, identify(path))
            except ModelFileError as error:
                found[resolved] = LibraryEntry(path, None, str(error))
        return list(found.values())

    def _candidates(self) -> Iterable[Path]:
        for folder in self.folders:
            if not folder.is_dir():
                continue
            for item in sorted(folder.iterdir()):
                if item.name.startswith("."):
                    continue
                if item.is_dir() or _looks_like_weights(item):
                    yield item

    def find(self, name_or_path: str) -> ModelFile:
        """A path (identified on the spot), else a library model by name or short hash."""
        path = Path(name_or_path).expanduser()
        if path.exists():
            try:
                return identify(path)
            except ModelFileError:
                # a bare name that happens to name something in the current folder (a
                # `bench` folder, say) still names a library model
                if path.name != name_or_path or not self._named(name_or_path):
                    raise
        matches = self._named(name_or_path)
        if not matches:
            raise ModelFileError(f"no model named {name_or_path!r} (see `studio models list`)")
        if len(matches) > 1:
            paths = ", ".join(str(m.path) for m in matches)
            raise ModelFileError(f"{name_or_path!r} names several models: {paths}")
        return matches[0]

    def _named(self, name_or_path: str) -> list[ModelFile]:
        """The library's models of this name or path, else, when it looks like a short
        hash, of that hash: only then are the library's files hashed (those not yet)."""
        models = [e.info for e in self.entries() if e.info is not None]
        named = [m for m in models if name_or_path in (m.name, str(m.path))]
        if named or not _SHORT_HASH_TEXT.fullmatch(name_or_path):
            return named
        log.info("no model named %r: looking it up by short hash", name_or_path)
        return [m for m in models if self.short_hash(m) == name_or_path.lower()]

    def sha256(self, info: ModelFile, progress: Progress | None = None) -> str:
        """Its SHA-256, hashed now unless cached; `progress` hears of the bytes read."""
        if info.path.is_file():
            return self.hashes.sha256(info.path, progress=progress)
        files = _files(info.path)
        total, done = sum(f.stat().st_size for f in files), 0
        digest = hashlib.sha256()
        for file in files:
            step = None if progress is None else _offset(progress, done, total)
            digest.update(self.hashes.sha256(file, progress=step).encode())
            done += file.stat().st_size
        return digest.hexdigest()

    def short_hash(self, info: ModelFile, progress: Progress | None = None) -> str:
        return self.sha256(info, progress)[:SHORT_HASH]

    def cached_short_hash(self, info: ModelFile) -> str | None:
        """Its short hash if every file of it is hashed already, else None: never hashes."""
        if info.path.is_file():
            found = self.hashes.cached(info.path)
            return found[:SHORT_HASH] if found is not None else None
        digest = hashlib.sha256()
        for file in _files(info.path):
            found = self.hashes.cached(file)
            if found is None:
                return None
            digest.update(found.encode())
        return digest.hexdigest()[:SHORT_HASH]

    def lora_hash(self, info: ModelFile) -> str:
        """A LoRA's hash as A1111 writes it in `Lora hashes` (12 hex digits of AutoV3)
        for a single safetensors file; the short hash otherwise."""
        if info.format != SAFETENSORS or not info.path.is_file():
            return self.short_hash(info)
        return self.hashes.sha256(info.path, body_only=True)[:LORA_HASH]


_SHORT_HASH_TEXT = re.compile(f"[0-9a-fA-F]{{{SHORT_HASH}}}")


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _offset(progress: Progress, done: int, total: int) -> Progress:
    """A folder's progress, from one of its files' (which starts `done` bytes in)."""
    return lambda hashed, _size: progress(done + hashed, total)


def _looks_like_weights(path: Path) -> bool:
    """A file whose content is a checkpoint of some kind (pickles included, to refuse)."""
    try:
        return path.is_file() and sniff(path) in ("safetensors", "pickle")
    except OSError:
        return False
