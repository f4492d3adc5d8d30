"""Turn a pickled PyTorch checkpoint into safetensors, on the user's explicit request.

The checkpoint is read with `torch.load(weights_only=True)` only: PyTorch's restricted
unpickler, which builds tensors and plain containers and refuses every other object, so
a payload hidden in the pickle is never run. torch is imported here, when asked for.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from studio.core.files import atomic_write_bytes
from studio.core.model_files import ModelFileError, sniff


def convert_pickle(source: Path, out: Path | None = None) -> Path:
    """Write the tensors of `source` to `out` (default: beside it, .safetensors)."""
    import torch
    from safetensors.torch import save

    if sniff(source) != "pickle":
        raise ModelFileError(f"{source.name} is not a pickled checkpoint")
    out = out or source.with_suffix(".safetensors")
    if out.exists():
        raise ModelFileError(f"{out} already exists: not overwritten")
    try:
        loaded = torch.load(source, map_location="cpu", weights_only=True, mmap=False)
    except Exception as error:  # UnpicklingError for anything but tensors, or a bad file
        raise ModelFileError(
            f"{source.name} refused: it holds more than tensors, or is damaged ({error})"
        ) from error
    tensors = _tensors(loaded)
    if not tensors:
        raise ModelFileError(f"{source.name} holds no tensors")
    # safetensors wants each tensor in its own contiguous storage
    data = save(
        {name: t.detach().contiguous().clone() for name, t in tensors.items()},
        metadata={"converted_from": os.path.basename(source)},
    )
    atomic_write_bytes(out, data)
    return out


def _tensors(loaded: Any) -> dict[str, Any]:
    """The state dict inside a checkpoint: itself, or its "state_dict" entry."""
    import torch

    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict):
        return {}
    return {str(k): v for k, v in loaded.items() if isinstance(v, torch.Tensor)}
