"""The trained model as files: tokenizers, transformer and ranker, in safetensors (no pickle).

A bundle folder holds `image-tokenizer.safetensors`, `transformer.safetensors`,
`ranker.safetensors` (each model's config in the file's metadata) and `text-vocab.json`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from shapes_backend.model.image_tokens import ImageTokenizer
from shapes_backend.model.text_tokens import TextTokenizer

# Package data, read where the package is installed; a real folder, as ONNX Runtime and
# safetensors open files by path (a zipped install is not supported).
SHIPPED = Path(str(files("shapes_backend") / "weights"))
IMAGE_TOKENIZER = "image-tokenizer.safetensors"
TRANSFORMER = "transformer.safetensors"
RANKER = "ranker.safetensors"
TEXT_VOCAB = "text-vocab.json"
MODEL_CARD = "model.json"  # {"name": ..., "version": ...}: what the app and metadata call it


class BundleError(ValueError):
    """A model folder that is missing files or holds the wrong tensors."""


@dataclass(frozen=True)
class Tokenizers:
    text: TextTokenizer
    image: ImageTokenizer

    @classmethod
    def load(cls, folder: Path) -> Tokenizers:
        try:
            words = json.loads((folder / TEXT_VOCAB).read_text(encoding="utf-8"))
            return cls(TextTokenizer(tuple(words)), ImageTokenizer.load(folder / IMAGE_TOKENIZER))
        except (OSError, ValueError, KeyError) as error:
            raise BundleError(f"cannot read the tokenizers in {folder}: {error}") from error

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / TEXT_VOCAB).write_text(json.dumps(list(self.text.words), indent=0) + "\n")
        self.image.save(folder / IMAGE_TOKENIZER)


def model_label(folder: Path) -> str:
    """ "Shapes v5": the name and version the bundle's model card gives ("Shapes, unversioned"
    for a bundle without one, such as a test's)."""
    try:
        card = json.loads((folder / MODEL_CARD).read_text(encoding="utf-8"))
        return f"{card['name']} v{card['version']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "Shapes, unversioned"


def write_model_card(folder: Path, version: str) -> None:
    (folder / MODEL_CARD).write_text(json.dumps({"name": "Shapes", "version": version}) + "\n")


def save_module(module, config, path: Path) -> None:  # torch objects: typed loosely on purpose
    """A torch module's weights and its config (as metadata) into one safetensors file."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    save_file(tensors, str(path), metadata={"config": json.dumps(config.to_dict())})


def load_module(cls, config_cls, path: Path, device: str = "cpu"):
    """Rebuild a module from `save_module`'s file; shapes must match its config exactly."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device=device) as handle:
            config = config_cls(**json.loads(handle.metadata()["config"]))
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except Exception as error:  # safetensors raises its own error type for damaged files
        raise BundleError(f"cannot read {path.name}: {error}") from error
    module = cls(config)
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as error:
        raise BundleError(f"{path.name} does not fit its own config: {error}") from error
    return module.to(device).eval()
