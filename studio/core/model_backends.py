"""What the installed backends make of a model file: its architecture, variant and kind,
and whether any of them can use it.

The core knows file formats, not architectures: it asks the backends whose manifests
declare a file's format (`Backend.examine`). A file that every one of them refuses (a
variant none runs, say) is refused, with the first one's reason: `studio models add`
does not save it, `studio models list` shows it refused, generating stops before loading.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from studio.core.backend import ModelInfo
from studio.core.model_files import ModelFile

if TYPE_CHECKING:
    from studio.core.registry import PluginRegistry

log = logging.getLogger(__name__)


def loaders(registry: PluginRegistry) -> dict[str, list[str]]:
    """The ids of the backends that load each format, as their manifests say (no backend
    is imported)."""
    found: dict[str, list[str]] = {}
    for record in registry.records():
        for format_ in record.formats:
            found.setdefault(format_, []).append(record.id)
    return found


def examine(
    registry: PluginRegistry, found: ModelFile, backend_ids: Iterable[str] | None = None
) -> tuple[str, ModelInfo] | None:
    """(backend id, what it makes of `found`) from the backends that load its format (or
    `backend_ids`): the first that can use it and knows what it is, else the first that
    can use it, else the first refusal; None when none answers (none installed, or each
    failed: that is logged)."""
    ids = loaders(registry).get(found.format, []) if backend_ids is None else backend_ids
    verdicts: list[tuple[str, ModelInfo]] = []
    for backend_id in sorted(ids):
        try:
            verdicts.append((backend_id, registry.get(backend_id).examine(found)))
        except Exception as error:  # not installed properly, plugin code that fails
            log.warning("backend %r: cannot examine %s: %s", backend_id, found.path, error)
    usable = [(i, info) for i, info in verdicts if not info.refused]
    knowing = [(i, info) for i, info in usable if info.architecture or info.kind != "model"]
    return next(iter(knowing or usable or verdicts), None)
