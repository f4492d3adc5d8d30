"""The models of the user's library that a backend of this plugin loads, by format."""

from __future__ import annotations

from collections.abc import Callable

from studio.api import ModelFile, ModelFileError, ModelInfo, ModelLibrary

Library = Callable[[], ModelLibrary] | None


def listed(library: Library, formats: tuple[str, ...]) -> list[ModelInfo]:
    if library is None:
        return []
    return [describe(e.info) for e in library().entries()
            if e.info is not None and e.info.format in formats]  # fmt: skip


def find(library: Library, model: str, formats: tuple[str, ...]) -> ModelFile:
    """`model` (a path, name or short hash), or with '' the first usable one."""
    if library is None:
        raise ModelFileError("no model library: Studio did not start this backend")
    models = library()
    if model:
        found = models.find(model)
    else:
        usable = [e.info for e in models.entries() if e.info and e.info.format in formats]
        if not usable:
            folders = ", ".join(str(f) for f in models.folders)
            raise ModelFileError(f"no {' or '.join(formats)} model found in {folders}")
        found = usable[0]
    if found.format not in formats:
        raise ModelFileError(f"{found.name} is a {found.format} model; this backend loads "
                             f"{' or '.join(formats)} models")  # fmt: skip
    return found


def describe(found: ModelFile, library: Library = None) -> ModelInfo:
    """As the app shows it; with the library, with its short hash (computed once)."""
    digest = library().short_hash(found) if library is not None else ""
    return ModelInfo(ref=str(found.path), name=found.name, architecture=found.architecture,
                     format=found.format, size_bytes=found.size, hash=digest)  # fmt: skip
