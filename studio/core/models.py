"""The model library: models in the user's model folders and models added one by one.

Each model shows its format, size and short hash (its architecture is for the backends
that load it to say). The short hash is the first 10 hex digits of its file's SHA-256, as
other local generators show theirs, so the hash written into an image's metadata matches
theirs. A folder's hash is the SHA-256 of its files' own SHA-256s in path order. Hashes
are cached by path, size and modification time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterable, Sequence
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


class HashCache:
    """SHA-256 of files, kept in a JSON file and trusted while size and mtime match."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            self._known: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self._known = {}

    def sha256(self, file: Path, body_only: bool = False) -> str:
        """The file's SHA-256; with `body_only`, of a safetensors file's tensors after
        its header (A1111's hash of LoRAs, which Civitai looks them up by: "AutoV3")."""
        stat = file.stat()
        key, stamp = str(file.resolve()), [stat.st_size, stat.st_mtime_ns]
        key += "#body" if body_only else ""
        with self._lock:
            known = self._known.get(key)
        if isinstance(known, dict) and known.get("stamp") == stamp:
            return str(known["sha256"])
        digest = hashlib.sha256()
        with file.open("rb") as handle:
            if body_only:
                handle.seek(8 + int.from_bytes(handle.read(8), "little"))
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
        with self._lock:
            self._known[key] = {"stamp": stamp, "sha256": digest.hexdigest()}
            text = json.dumps(self._known, indent=1).encode()
        try:
            atomic_write_bytes(self.path, text)
        except OSError as error:  # a cache: computing again next time is fine
            log.warning("cannot write the hash cache %s: %s", self.path, error)
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
        """The library's models of this name or path, else of this short hash (files are
        hashed only when no name matches)."""
        models = [e.info for e in self.entries() if e.info is not None]
        named = [m for m in models if name_or_path in (m.name, str(m.path))]
        return named or [m for m in models if self.short_hash(m) == name_or_path]

    def sha256(self, info: ModelFile) -> str:
        if info.path.is_file():
            return self.hashes.sha256(info.path)
        digest = hashlib.sha256()
        for file in sorted(p for p in info.path.rglob("*") if p.is_file()):
            digest.update(self.hashes.sha256(file).encode())
        return digest.hexdigest()

    def short_hash(self, info: ModelFile) -> str:
        return self.sha256(info)[:SHORT_HASH]

    def lora_hash(self, info: ModelFile) -> str:
        """A LoRA's hash as A1111 writes it in `Lora hashes` (12 hex digits of AutoV3)
        for a single safetensors file; the short hash otherwise."""
        if info.format != SAFETENSORS or not info.path.is_file():
            return self.short_hash(info)
        return self.hashes.sha256(info.path, body_only=True)[:LORA_HASH]


def _looks_like_weights(path: Path) -> bool:
    """A file whose content is a checkpoint of some kind (pickles included, to refuse)."""
    try:
        return path.is_file() and sniff(path) in ("safetensors", "pickle")
    except OSError:
        return False
