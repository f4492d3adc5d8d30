"""The whole surface of Studio that a plugin imports: nothing else in `studio` is for plugins.

A plugin is its own distribution. It declares its backends in its `pyproject.toml`:

    [project.entry-points."studio.backends"]
    my-backend = "my_package.backend:MyBackend"

subclasses `Backend`, and may add CLI commands (`studio.commands`, see
`studio.api.commands`). A backend that loads model files from the user's library lists
their formats in `my_package/studio-plugin.toml`, which Studio reads without importing
the plugin's code. Studio imports a backend's module the first time it is used.
See docs/writing-a-backend.md.
"""

from studio.api.commands import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    emit,
    open_core,
)
from studio.core.addons import Control, Lora, split_loras
from studio.core.backend import (
    DECODING,
    LOADING,
    SAVING,
    STEPS,
    Backend,
    Cancelled,
    Candidate,
    Capabilities,
    GenerationContext,
    ModelInfo,
    PromptCut,
)
from studio.core.files import atomic_write_bytes
from studio.core.inputs import InputError, InputPicture
from studio.core.jobs import JobState
from studio.core.model_files import (
    ModelFile,
    ModelFileError,
    PickleRefused,
    read_json_object,
    safetensors_shapes,
    sniff,
)
from studio.core.models import ModelLibrary
from studio.core.request import GenerationRequest, RequestError
from studio.core.sizes import readable_size

__all__ = [
    "DECODING",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_USAGE",
    "LOADING",
    "SAVING",
    "STEPS",
    "Backend",
    "Cancelled",
    "Candidate",
    "Capabilities",
    "CliError",
    "Control",
    "GenerationContext",
    "GenerationRequest",
    "InputError",
    "InputPicture",
    "JobState",
    "Lora",
    "ModelFile",
    "ModelFileError",
    "ModelInfo",
    "ModelLibrary",
    "PickleRefused",
    "PromptCut",
    "RequestError",
    "atomic_write_bytes",
    "emit",
    "open_core",
    "read_json_object",
    "readable_size",
    "safetensors_shapes",
    "sniff",
    "split_loras",
]
