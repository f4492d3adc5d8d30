"""A job's model files hashed while its model loads, for its images' metadata.

The metadata names the model and add-ons with their hashes; hashing a 4 GB file takes
seconds, so the engine starts it on its background pool when a job starts rather than
after the images are made. The model's hash lands in the cache, where the backend's
`model_info` finds it; the add-ons' names and hashes are the answer, looked up once per
job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from studio.core.addons import addon_names
from studio.core.model_files import ModelFileError
from studio.core.models import ModelLibrary, Progress
from studio.core.request import GenerationRequest

log = logging.getLogger(__name__)
AddonNames = dict[str, tuple[str, str]]  # what the request names it by -> (name, hash)


def hash_ahead(
    library: Callable[[], ModelLibrary] | None,
    request: GenerationRequest,
    default_model: Callable[[], str],
    progress: Progress,
) -> AddonNames:
    """Hash the model `request` runs (the library's file it names by name or path, or
    with none the backend's `default_model()`), then its add-ons; their names and hashes.
    Only the files the job uses are hashed; `progress` may raise to stop."""
    if library is None:
        return {}
    models = library()
    ref = request.model or default_model()
    try:
        if ref:
            models.short_hash(models.find(ref), progress)
    except (ModelFileError, OSError) as error:  # the backend says so when it loads it
        log.debug("model %r not hashed ahead: %s", ref, error)
    return addon_names(lambda: models, request)
