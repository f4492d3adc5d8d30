"""Single-file checkpoints (the original, "LDM" layout most tools share), loaded offline.

A single file holds weights only; the configuration of its architecture (JSON files, no
weights) ships in this package's `configs/<architecture>/`, CLIP's tokenizer once in
`configs/clip-tokenizer/`, and diffusers maps the weights onto them. SD 1.x,
SD 2.x and SDXL are supported, their Turbo variants too (the same architectures), and
their inpainting models (a UNet of 9 input channels: `configs/<architecture>-inpainting/`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

from sd_backends.architecture import (
    INPAINTING,
    SD1,
    SD2,
    SDXL,
    sd2_prediction_type,
    variant_of,
)
from sd_backends.load_errors import load_failure
from studio.api import ModelFileError, safetensors_shapes

RESOURCES = Path(str(files("sd_backends") / "configs"))  # package data
CONFIG_FOLDERS: dict[str, Path] = {
    SD1: RESOURCES / "sd1",
    SD2: RESOURCES / "sd2",
    SDXL: RESOURCES / "sdxl",
}
INPAINTING_CONFIG_FOLDERS: dict[str, Path] = {
    SD1: RESOURCES / "sd1-inpainting",
    SD2: RESOURCES / "sd2-inpainting",
    SDXL: RESOURCES / "sdxl-inpainting",
}
_VARIANT_FOLDERS = {"": CONFIG_FOLDERS, INPAINTING: INPAINTING_CONFIG_FOLDERS}
# diffusers' pipeline for each (SDXL or not, variant); the configuration's index names it too
_PIPELINES = {
    (False, ""): "StableDiffusionPipeline",
    (True, ""): "StableDiffusionXLPipeline",
    (False, INPAINTING): "StableDiffusionInpaintPipeline",
    (True, INPAINTING): "StableDiffusionXLInpaintPipeline",
}
CLIP_TOKENIZER = RESOURCES / "clip-tokenizer"


def load_single_file(path: Path, architecture: str, dtype: Any, variant: str | None = None) -> Any:
    """The pipeline of a single-file checkpoint whose architecture was read from its
    tensor names and shapes (`architecture.architecture_of`): an inpainting pipeline for
    an inpainting model. `variant` as `architecture.variant` says; None reads it here."""
    import diffusers

    if variant is None:
        variant = variant_of(safetensors_shapes(path))
    folders = _VARIANT_FOLDERS.get(variant)
    if folders is None:
        raise ModelFileError(f"{path.name}: {variant} models are not supported")
    kind = f"{architecture} {variant}".strip()
    config = folders.get(architecture)
    if config is None:
        supported = ", ".join(folders)
        raise ModelFileError(
            f"{path.name}: single-file {kind} checkpoints are not supported "
            f"({supported} are); a diffusers folder of it loads"
        )
    xl = architecture == SDXL
    pipeline_class = getattr(diffusers, _PIPELINES[xl, variant])
    extra = {} if xl else {"safety_checker": None, "requires_safety_checker": False}
    try:
        with _safetensors_name(path) as named:
            pipeline = pipeline_class.from_single_file(
                str(named),
                config=str(config),
                local_files_only=True,
                torch_dtype=dtype,
                **_tokenizers(config, architecture),
                **extra,
            )
    except MemoryError:
        raise
    except Exception as error:  # shapes that don't fit the architecture, a damaged file
        raise load_failure(path.name, kind, error) from error
    if architecture == SD2:
        scheduler = pipeline.scheduler
        default = scheduler.config.prediction_type
        # the probe was measured on the text-to-image releases; SD 2's inpainting model
        # predicts the noise, as its configuration says, unless a YAML beside it says v
        prediction = sd2_prediction_type(path, default, probe=not variant)
        pipeline.scheduler = type(scheduler).from_config(
            scheduler.config, prediction_type=prediction
        )
    return pipeline


def _tokenizers(config: Path, architecture: str) -> dict[str, Any]:
    """CLIP's tokenizer for each text encoder: the configuration's own if it has one, else
    the shared one, padded as its encoder was trained (OpenCLIP's, SD 2.x's and SDXL's
    second, with "!")."""
    from transformers import CLIPTokenizer

    open_clip = {"tokenizer": architecture == SD2, "tokenizer_2": True}
    tokenizers = {}
    for name in ("tokenizer", "tokenizer_2") if architecture == SDXL else ("tokenizer",):
        if (config / name).is_dir():
            tokenizers[name] = CLIPTokenizer.from_pretrained(config / name)
        else:
            pad = {"pad_token": "!"} if open_clip[name] else {}
            tokenizers[name] = CLIPTokenizer.from_pretrained(CLIP_TOKENIZER, **pad)
    return tokenizers


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
