"""A small real model library, and a count of the files read to be hashed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from studio.core import models

# A tensor of a Stable-Diffusion checkpoint's UNet, by name: what the SD plugin's tests
# give their files for the plugin to take them as models (it refuses files it does not
# recognise); the core's tests keep a name of no model family
SD_TENSOR = "model.diffusion_model.out.2.weight"


def weights(path: Path, seed: int, tensor: str = "layer.weight") -> Path:
    """A small safetensors file of its own content."""
    save_file({tensor: np.random.default_rng(seed).random((16, 16))}, str(path))
    return path


def lora(path: Path) -> Path:
    down, up = "lora_unet_x.lora_down.weight", "lora_unet_x.lora_up.weight"
    save_file({down: np.ones((4, 8)), up: np.ones((8, 4))}, str(path))
    return path


def library_files(folder: Path, tensor: str = "layer.weight") -> dict[str, Path]:
    """Several models: two files (of one `tensor`), a diffusers folder, a LoRA."""
    folder.mkdir(parents=True, exist_ok=True)
    pipeline = folder / "pipeline"
    (pipeline / "unet").mkdir(parents=True)
    (pipeline / "model_index.json").write_text("{}")
    weights(pipeline / "unet" / "diffusion_pytorch_model.safetensors", 3)
    return {
        "dream": weights(folder / "dream.safetensors", 1, tensor),
        "other": weights(folder / "other.safetensors", 2, tensor),
        "pipeline": pipeline,
        "ink": lora(folder / "ink.safetensors"),
    }


def short(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:10]


def count_hashing(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the files read to be hashed from now on ("#body" for a LoRA's
    AutoV3), in order."""
    real = models.file_sha256
    seen: list[str] = []

    def counting(file: Path, body_only: bool = False, progress=None) -> str:
        seen.append(file.name + ("#body" if body_only else ""))
        return real(file, body_only, progress)

    monkeypatch.setattr(models, "file_sha256", counting)
    return seen
