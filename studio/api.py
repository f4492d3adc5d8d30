"""The one module a backend plugin imports from Studio.

A plugin declares its backend class in its own `pyproject.toml`:

    [project.entry-points."studio.backends"]
    my-backend = "my_package.backend:MyBackend"

and subclasses `Backend`. Studio imports the module the first time the backend is used.
"""

from studio.core.backend import (
    Backend,
    Cancelled,
    Candidate,
    Capabilities,
    GenerationContext,
    ModelInfo,
)
from studio.core.model_files import ModelFile, ModelFileError, PickleRefused, sniff
from studio.core.models import ModelLibrary
from studio.core.request import GenerationRequest, RequestError

__all__ = [
    "Backend",
    "Cancelled",
    "Candidate",
    "Capabilities",
    "GenerationContext",
    "GenerationRequest",
    "ModelFile",
    "ModelFileError",
    "ModelInfo",
    "ModelLibrary",
    "PickleRefused",
    "RequestError",
    "sniff",
]
