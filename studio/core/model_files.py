"""What a model file or folder on disk is, read from its content, never from its name.

Formats: a diffusers folder (`model_index.json`), a single-file `.safetensors`
checkpoint (SD 1.x, SD 2.x, SDXL: the architecture is read from its tensor names and
shapes), and an ONNX folder (text encoder, UNet and VAE decoder as `.onnx`, weights as
external data inside the folder). Pickled checkpoints are recognised by their bytes,
whatever their extension, and refused: unpickling can run any code. Nothing here loads
weights; a model's files are only validated.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DIFFUSERS, SAFETENSORS, ONNX = "diffusers", "safetensors", "onnx"
SD1, SD2, SDXL, UNKNOWN = "SD 1.x", "SD 2.x", "SDXL", "unknown"
ONNX_PARTS = ("text_encoder", "unet", "vae_decoder")
# The UNet's first cross-attention keys: their width is the text encoder's (768 for SD 1.x,
# 1024 for SD 2.x); SDXL checkpoints carry a second text encoder and the ADM embedding.
_SD_CROSS_ATTENTION = (
    "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
)
_SDXL_MARKERS = ("conditioner.embedders.1.", "model.diffusion_model.label_emb.")


class ModelFileError(ValueError):
    """A model that cannot be used, with a message for the user."""


class PickleRefused(ModelFileError):
    """A pickled checkpoint: loading it could run code hidden in it."""


@dataclass(frozen=True)
class ModelFile:
    path: Path
    format: str  # DIFFUSERS | SAFETENSORS | ONNX
    architecture: str  # SD1 | SD2 | SDXL | UNKNOWN
    size: int  # bytes on disk, all files of a folder

    @property
    def name(self) -> str:
        return self.path.stem if self.path.is_file() else self.path.name

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "format": self.format,
                "architecture": self.architecture, "size": self.size}  # fmt: skip


def identify(path: Path) -> ModelFile:
    """The model at `path`; raises ModelFileError (PickleRefused for pickles) saying why
    it cannot be used."""
    path = Path(path)
    if path.is_dir():
        if (path / "unet" / "model.onnx").is_file():  # ONNX exports may carry an index too
            check_onnx_folder(path)
            return ModelFile(path, ONNX, _onnx_architecture(path), _folder_size(path))
        if (path / "model_index.json").is_file():
            return ModelFile(path, DIFFUSERS, _diffusers_architecture(path), _folder_size(path))
        raise ModelFileError(
            f"{path} is a folder but not a model: expected model_index.json (diffusers) "
            "or unet/model.onnx (ONNX)"
        )
    if not path.is_file():
        raise ModelFileError(f"{path} does not exist")
    kind = sniff(path)
    if kind == "pickle":
        raise PickleRefused(
            f"{path.name} is a pickled PyTorch checkpoint: loading a pickle can run code "
            "hidden in it, so Studio does not. Convert it to safetensors with "
            f"`studio models convert {path}` (reads only tensors, never code)."
        )
    if kind != SAFETENSORS:
        raise ModelFileError(f"{path.name} is not a model file Studio knows ({kind})")
    shapes = safetensors_shapes(path)
    return ModelFile(path, SAFETENSORS, architecture_of(shapes), path.stat().st_size)


def sniff(path: Path) -> str:
    """ "safetensors", "pickle", or a short description of what else the file is."""
    with path.open("rb") as handle:
        head = handle.read(9)
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"  # the PROTO opcode that opens every pickle since protocol 2
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                if any(name.endswith(".pkl") for name in archive.namelist()):
                    return "pickle"  # torch.save's zip format: data.pkl plus tensor blobs
        except zipfile.BadZipFile:
            pass
        return "a zip archive"
    if len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") > 1:
        return SAFETENSORS  # an 8-byte header length, then the JSON header
    if head.startswith(b"GGUF"):
        return "a GGUF file"
    return "unrecognised content"


def safetensors_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor names and shapes, after the safetensors library has checked the header
    (size, offsets, dtypes, shapes, a body that covers it exactly); no weights read."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="np") as handle:
            return {name: list(handle.get_slice(name).get_shape()) for name in handle.keys()}  # noqa: SIM118
    except Exception as error:  # SafetensorError, OSError: one clear message
        reason = str(error).removeprefix("Error while deserializing header: ")
        raise ModelFileError(f"{path.name} is not a valid safetensors file: {reason}") from error


def architecture_of(shapes: dict[str, list[int]]) -> str:
    """SD 1.x, SD 2.x or SDXL from a single-file checkpoint's tensor names and shapes:
    SDXL's two text encoders and added conditioning; else the text encoder, OpenAI's CLIP
    (SD 1.x) or OpenCLIP (SD 2.x), by its names or, for files that leave it out, by the
    width the UNet's cross-attention takes."""
    names = shapes.keys()
    if any(name.startswith(_SDXL_MARKERS) for name in names):
        return SDXL
    if any(name.startswith("cond_stage_model.model.") for name in names):
        return SD2
    if any(name.startswith("cond_stage_model.transformer.") for name in names):
        return SD1
    width = shapes.get(_SD_CROSS_ATTENTION, [0, 0])[-1]
    return {768: SD1, 1024: SD2}.get(width, UNKNOWN)


def check_onnx_folder(folder: Path) -> None:
    """Every part is there, and no external-data path leaves the folder (by `..`, an
    absolute path or a symlink): ONNX Runtime would read whatever such a path names."""
    import onnx

    root = folder.resolve()
    second = ("text_encoder_2",) if (folder / "text_encoder_2").exists() else ()  # SDXL's
    for part in ONNX_PARTS + second:
        graph = folder / part / "model.onnx"
        if not graph.is_file():
            raise ModelFileError(f"{folder.name} lacks {part}/model.onnx")
        try:
            model = onnx.load(str(graph), load_external_data=False)
        except Exception as error:
            raise ModelFileError(f"{part}/model.onnx is not a valid ONNX file: {error}") from error
        for tensor in _external_tensors(model):
            location = dict((e.key, e.value) for e in tensor.external_data).get("location", "")
            target = (graph.parent / location).resolve()
            if Path(location).is_absolute() or not target.is_relative_to(root):
                raise ModelFileError(
                    f"{part}/model.onnx refused: its weights {tensor.name!r} point outside "
                    f"the model folder ({location!r})"
                )


def _external_tensors(model: Any) -> list[Any]:
    """Every tensor of the model whose data lives in another file: initializers and
    tensor attributes, in subgraphs too."""
    from onnx import TensorProto

    found, graphs = [], [model.graph]
    while graphs:
        graph = graphs.pop()
        tensors = list(graph.initializer)
        for node in graph.node:
            for attribute in node.attribute:
                tensors += [attribute.t] if attribute.HasField("t") else []
                tensors += list(attribute.tensors)
                graphs += ([attribute.g] if attribute.HasField("g") else []) + list(
                    attribute.graphs
                )
        found += [t for t in tensors if t.data_location == TensorProto.EXTERNAL]
    return found


def _diffusers_architecture(folder: Path) -> str:
    index = _read_json(folder / "model_index.json")
    if "XL" in str(index.get("_class_name", "")):
        return SDXL
    unet = _read_json(folder / "unet" / "config.json") if (folder / "unet").is_dir() else {}
    return {768: SD1, 1024: SD2}.get(unet.get("cross_attention_dim"), UNKNOWN)


def _onnx_architecture(folder: Path) -> str:
    """Studio's exports name it in their index; other exports keep diffusers' configs."""
    index = folder / "model_index.json"
    if not index.is_file():
        return UNKNOWN
    named = _read_json(index).get("architecture")
    if named in (SD1, SD2, SDXL):
        return str(named)
    return (
        _diffusers_architecture(folder) if (folder / "unet" / "config.json").is_file() else UNKNOWN
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        where = f"{path.parent.name}/{path.name}"
        raise ModelFileError(f"cannot read {where}: {error.__class__.__name__}") from error
    if not isinstance(data, dict):
        raise ModelFileError(f"{path.parent.name}/{path.name} is not a JSON object")
    return data


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
