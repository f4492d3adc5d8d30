"""What a model file or folder on disk is, read from its content, never from its name.

The core knows file formats, not model architectures: a single `.safetensors` file, a
diffusers folder (`model_index.json`) and an ONNX folder (`.onnx` graphs, weights as
external data inside the folder). Which architecture a file holds is for the plugin that
loads it to say. Pickled checkpoints are recognised by their bytes, whatever their
extension, and refused: unpickling can run any code. An ONNX graph whose weights point
outside its folder is refused too. Nothing here loads weights; files are only validated.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.core.errors import UserFacingError

DIFFUSERS, SAFETENSORS, ONNX = "diffusers", "safetensors", "onnx"


class ModelFileError(ValueError, UserFacingError):
    """A model that cannot be used, with a message for the user."""


class PickleRefused(ModelFileError):
    """A pickled checkpoint: loading it could run code hidden in it."""


@dataclass(frozen=True)
class ModelFile:
    path: Path
    format: str  # DIFFUSERS | SAFETENSORS | ONNX
    size: int  # bytes on disk, all files of a folder

    @property
    def name(self) -> str:
        return self.path.stem if self.path.is_file() else self.path.name

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "format": self.format, "size": self.size}


def identify(path: Path) -> ModelFile:
    """The model at `path`; raises ModelFileError (PickleRefused for pickles) saying why
    it cannot be used."""
    path = Path(path)
    if path.is_dir():
        if onnx_graphs(path):  # ONNX exports may carry a model_index.json too
            check_onnx_folder(path)
            return ModelFile(path, ONNX, _folder_size(path))
        if (path / "model_index.json").is_file() or _diffusers_part(path):
            return ModelFile(path, DIFFUSERS, _folder_size(path))
        raise ModelFileError(
            f"{path} is a folder but not a model: expected model_index.json (diffusers), "
            "config.json beside weights (one diffusers model, e.g. a ControlNet) "
            "or .onnx graphs (ONNX)"
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
    safetensors_shapes(path)  # refuses a header that doesn't add up
    return ModelFile(path, SAFETENSORS, path.stat().st_size)


def _diffusers_part(folder: Path) -> bool:
    """One diffusers model saved alone (a ControlNet, say): its config beside its weights."""
    weights = [*folder.glob("*.safetensors"), *folder.glob("*.bin")]
    return (folder / "config.json").is_file() and bool(weights)


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


def onnx_graphs(folder: Path) -> list[Path]:
    """The `.onnx` graphs in a folder and its subfolders (one level: one per model part)."""
    return sorted([*folder.glob("*.onnx"), *folder.glob("*/*.onnx")])


def check_onnx_folder(folder: Path) -> None:
    """No graph's external-data path leaves the folder (by `..`, an absolute path or a
    symlink): ONNX Runtime would read whatever such a path names."""
    import onnx

    root = folder.resolve()
    for graph in onnx_graphs(folder):
        part = graph.relative_to(folder).as_posix()
        try:
            model = onnx.load(str(graph), load_external_data=False)
        except Exception as error:
            raise ModelFileError(f"{part} is not a valid ONNX file: {error}") from error
        for tensor in _external_tensors(model):
            location = dict((e.key, e.value) for e in tensor.external_data).get("location", "")
            target = (graph.parent / location).resolve()
            if Path(location).is_absolute() or not target.is_relative_to(root):
                raise ModelFileError(
                    f"{part} refused: its weights {tensor.name!r} point outside "
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


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON file holding an object (a model's index or config); ModelFileError if not."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        where = f"{path.parent.name}/{path.name}"
        why = error.strerror if isinstance(error, OSError) else "it is not valid JSON"
        raise ModelFileError(f"cannot read {where}: {why}") from error
    if not isinstance(data, dict):
        raise ModelFileError(f"{path.parent.name}/{path.name} is not a JSON object")
    return data


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
