"""Single-file checkpoints (the original, "LDM" layout most tools share), loaded offline.

A single file holds weights only; the configuration of its architecture (JSON files
and the CLIP tokenizer, no weights) ships in `resources/diffusion/<architecture>/`, and
diffusers maps the weights onto it. SD 1.x is supported; SD 2.x and SDXL files are
recognised and refused with a clear message until their configurations ship.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from studio.api import ModelFileError

RESOURCES = Path(__file__).resolve().parents[2] / "resources" / "diffusion"
CONFIG_FOLDERS: dict[str, Path] = {"SD 1.x": RESOURCES / "sd1"}


def load_single_file(path: Path, architecture: str, dtype: Any) -> Any:
    """The pipeline of a single-file checkpoint whose architecture was read from its
    tensor names and shapes (`studio.core.model_files.architecture_of`)."""
    from diffusers import StableDiffusionPipeline

    config = CONFIG_FOLDERS.get(architecture)
    if config is None:
        supported = ", ".join(CONFIG_FOLDERS)
        raise ModelFileError(
            f"{path.name}: single-file {architecture} checkpoints are not supported yet "
            f"({supported} are); a diffusers folder of it loads"
        )
    try:
        with _safetensors_name(path) as named:
            return StableDiffusionPipeline.from_single_file(
                str(named), config=str(config), local_files_only=True, torch_dtype=dtype,
                safety_checker=None, requires_safety_checker=False,
            )  # fmt: skip
    except MemoryError:
        raise
    except Exception as error:  # shapes that don't fit the architecture, a damaged file
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelFileError(f"cannot load {path.name} as {architecture}: {reason}") from error


@contextlib.contextmanager
def _safetensors_name(path: Path) -> Iterator[Path]:
    """`path` under a name ending in .safetensors. diffusers picks its reader by the
    extension; Studio read the content (a safetensors file), so a checkpoint named
    otherwise gets a link that says so and never reaches torch.load."""
    if path.suffix.lower() == ".safetensors":
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="studio-") as folder:
        named = Path(folder) / "model.safetensors"
        try:
            named.symlink_to(path.resolve())
        except OSError:  # e.g. Windows without the symlink privilege
            os.link(path, named)
        yield named
