"""Model files identified by content; pickles, broken safetensors and escaping ONNX refused."""

from __future__ import annotations

import hashlib
import json
import pickle
import resource
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from studio.core.model_files import (
    DIFFUSERS,
    ONNX,
    SAFETENSORS,
    ModelFileError,
    PickleRefused,
    identify,
    safetensors_shapes,
)
from studio.core.models import ModelLibrary

# The core knows formats, not architectures: these tests use no model family's names.
LAYERS = {"encoder.layers.0.weight": (4, 8), "head.bias": (4,)}


def checkpoint(path: Path, tensors: dict[str, tuple[int, ...]]) -> Path:
    save_file({k: np.zeros(shape, np.float16) for k, shape in tensors.items()}, str(path))
    return path


class Payload:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


@pytest.mark.parametrize("name", ["model.bin", "model.safetensors", "model"])
def test_safetensors_files_are_known_by_their_content(tmp_path, name) -> None:
    path = checkpoint(tmp_path / name, LAYERS)  # the extension says nothing
    info = identify(path)
    assert (info.format, info.name, info.size) == (SAFETENSORS, "model", path.stat().st_size)
    assert safetensors_shapes(path) == {"encoder.layers.0.weight": [4, 8], "head.bias": [4]}
    assert info.to_json() == {
        "name": "model",
        "path": str(path),
        "format": SAFETENSORS,
        "size": info.size,
    }


@pytest.mark.parametrize(
    ("content", "kind"),
    [(b"GGUF\x03\x00\x00\x00rest", "a GGUF file"), (b"hello, world", "unrecognised content")],
)
def test_other_files_are_not_models(tmp_path, content, kind) -> None:
    path = tmp_path / "weights.safetensors"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match=f"not a model file Studio knows \\({kind}\\)"):
        identify(path)


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".bin", ".safetensors", ""])
def test_pickles_are_refused_under_any_name_and_never_run(tmp_path, suffix) -> None:
    marker = tmp_path / "payload-ran"
    raw = tmp_path / f"raw{suffix}"
    raw.write_bytes(pickle.dumps({"w": Payload(marker)}, protocol=4))
    import torch

    zipped = tmp_path / f"zipped{suffix}"
    torch.save({"w": Payload(marker)}, zipped)  # torch's zip format, data.pkl inside
    for path in (raw, zipped):
        with pytest.raises(
            PickleRefused, match=r"pickled PyTorch checkpoint.*studio models convert"
        ):
            identify(path)
    assert not marker.exists()


def test_converting_a_pickle_reads_tensors_only(tmp_path) -> None:
    import torch
    from safetensors.torch import load_file

    from studio.core.model_convert import convert_pickle

    marker = tmp_path / "payload-ran"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2), "x": Payload(marker)}}, evil)
    with pytest.raises(ModelFileError, match="refused: it holds more than tensors"):
        convert_pickle(evil)
    assert not marker.exists() and not evil.with_suffix(".safetensors").exists()

    good = tmp_path / "good.pt"
    weights = {"a": torch.arange(6.0).view(2, 3), "b": torch.ones(4, dtype=torch.float16)}
    weights["view"] = weights["a"][0]  # shares storage: safetensors needs its own copy
    torch.save({"state_dict": weights, "epoch": 3}, good)
    out = convert_pickle(good)
    loaded = load_file(out)
    assert set(loaded) == {"a", "b", "view"}
    assert all(torch.equal(loaded[k], weights[k]) for k in loaded)
    assert identify(out).format == SAFETENSORS
    with pytest.raises(ModelFileError, match="already exists"):
        convert_pickle(good)


def _craft(path: Path, header: dict, body: bytes, declared: int | None = None) -> Path:
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", declared or len(text)) + text + body)
    return path


def test_broken_safetensors_get_clear_errors_and_memory_stays_flat(tmp_path) -> None:
    good = checkpoint(tmp_path / "good.safetensors", {"a": (4, 4)})
    f32 = {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}
    broken = {
        "truncated": (tmp_path / "t.safetensors", good.read_bytes()[:-7]),
        "huge header": (tmp_path / "h.safetensors", struct.pack("<Q", 2**40) + b"{}"),
    }
    for path, data in broken.values():
        path.write_bytes(data)
    overlap = {"a": f32, "b": {**f32, "data_offsets": [8, 24]}}
    crafted = [
        _craft(tmp_path / "o.safetensors", overlap, bytes(24)),
        _craft(tmp_path / "s.safetensors", {"a": {**f32, "shape": [5]}}, bytes(16)),
        _craft(tmp_path / "d.safetensors", {"a": {**f32, "dtype": "X9"}}, bytes(16)),
        _craft(tmp_path / "j.safetensors", {"a": f32}, bytes(16), declared=10**8),
    ]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for path in [p for p, _ in broken.values()] + crafted:
        with pytest.raises(ModelFileError, match="not a valid safetensors file"):
            identify(path)
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 50_000  # a 1 TB header is refused, not allocated


def _onnx_graph(path: Path, location: str) -> None:
    import onnx
    from onnx import TensorProto, helper

    weight = helper.make_tensor("w", TensorProto.FLOAT, [2], [0.0, 0.0])
    weight.ClearField("float_data")
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "8")):
        weight.external_data.add(key=key, value=value)
    node = helper.make_node("Add", ["x", "w"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [weight],
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(helper.make_model(graph), str(path))


def _onnx_folder(root: Path, escaping: str = "", parts: tuple[str, ...] = ("a", "b")) -> Path:
    """Graphs in subfolders `parts` (and "" for the folder itself), each with its weights
    beside it; the last part's point at `escaping` instead where given."""
    for part in parts:
        (root / part).mkdir(parents=True, exist_ok=True)
        (root / part / "weights.bin").write_bytes(bytes(8))
        location = escaping if escaping and part == parts[-1] else "weights.bin"
        _onnx_graph(root / part / "model.onnx", location)
    return root


def test_onnx_folders_whose_weights_point_outside_are_refused(tmp_path) -> None:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(bytes(8))
    assert identify(_onnx_folder(tmp_path / "fine")).format == ONNX
    for name, location in (("dotdot", "../../secret.bin"), ("absolute", str(secret))):
        with pytest.raises(ModelFileError, match=r"b/model\.onnx refused: .*point outside"):
            identify(_onnx_folder(tmp_path / name, location))
    linked = _onnx_folder(tmp_path / "linked", "link.bin")
    (linked / "b" / "link.bin").symlink_to(secret)
    with pytest.raises(ModelFileError, match="point outside the model folder"):
        identify(linked)
    top = _onnx_folder(tmp_path / "top", "../secret.bin", parts=("a", ""))  # a graph at the top
    with pytest.raises(ModelFileError, match=r"^model\.onnx refused: .*point outside"):
        identify(top)


def test_any_onnx_graphs_make_an_onnx_folder(tmp_path) -> None:
    """No particular parts are required (what a model needs is for its backend to say),
    but every graph in the folder or a subfolder must be valid ONNX."""
    one = _onnx_folder(tmp_path / "one", parts=("only",))
    (one / "model_index.json").write_text("{}")  # an export may carry an index too
    info = identify(one)
    assert (info.format, info.name, info.size) == (ONNX, "one", _size(one))
    (one / "other").mkdir()
    (one / "other" / "model.onnx").write_bytes(b"not a graph")
    with pytest.raises(ModelFileError, match=r"other/model\.onnx is not a valid ONNX file"):
        identify(one)


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def test_diffusers_folders_are_known_by_their_index(tmp_path) -> None:
    folder = tmp_path / "pipeline"
    (folder / "part").mkdir(parents=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "SomePipeline"}))
    checkpoint(folder / "part" / "weights.safetensors", LAYERS)
    info = identify(folder)
    assert (info.format, info.name, info.size) == (DIFFUSERS, "pipeline", _size(folder))
    (folder / "model_index.json").unlink()
    with pytest.raises(ModelFileError, match="is a folder but not a model"):
        identify(folder)
    with pytest.raises(ModelFileError, match="does not exist"):
        identify(tmp_path / "nothing")


def test_library_lists_models_refusals_and_short_hashes(tmp_path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    model = checkpoint(folder / "dream.safetensors", LAYERS)
    (folder / "notes.txt").write_text("not a model")
    (folder / "old.ckpt").write_bytes(pickle.dumps({"w": 1}, protocol=2))
    pipeline = folder / "pipeline"
    pipeline.mkdir()
    (pipeline / "model_index.json").write_text("{}")
    added = checkpoint(tmp_path / "elsewhere.safetensors", {"other.weight": (2, 2)})
    library = ModelLibrary([folder, tmp_path / "missing"], [added], tmp_path / "hashes.json")
    entries = {e.path.name: e for e in library.entries()}
    assert set(entries) == {"dream.safetensors", "old.ckpt", "pipeline", "elsewhere.safetensors"}
    assert "pickled" in entries["old.ckpt"].error and entries["old.ckpt"].info is None
    assert entries["pipeline"].info.format == DIFFUSERS
    info = entries["dream.safetensors"].info
    expected = hashlib.sha256(model.read_bytes()).hexdigest()[:10]
    assert library.short_hash(info) == expected
    assert expected in (tmp_path / "hashes.json").read_text()  # cached
    assert library.find("dream") == info and library.find(expected) == info
    assert library.find(str(added)) == identify(added) == entries["elsewhere.safetensors"].info
    with pytest.raises(ModelFileError, match="no model named"):
        library.find("nothing")
    checkpoint(model, {**LAYERS, "extra": (2,)})  # changed: hashed anew
    assert library.short_hash(info) == hashlib.sha256(model.read_bytes()).hexdigest()[:10]


# A backend that loads safetensors files and says what each one is (here: how many tensors).
COUNTING = """from studio.api import Backend, Capabilities, ModelInfo, safetensors_shapes


class Counting(Backend):
    def capabilities(self):
        return Capabilities()

    def models(self):
        entries = self.model_library().entries()
        return [ModelInfo(ref=str(e.info.path), name=e.info.name, format=e.info.format,
                          architecture=f"{len(safetensors_shapes(e.info.path))}-tensor net")
                for e in entries if e.info is not None and e.info.format == "safetensors"]

    def load(self, model):
        pass

    def unload(self):
        pass

    def generate(self, request, ctx):
        return []
"""


@pytest.fixture
def counting_backend(install_plugins, tmp_path, monkeypatch) -> Iterator[None]:
    """Only two backends installed, both loading safetensors: one that counts tensors and
    one that fails on import."""
    from importlib.metadata import entry_points

    from test_registry import PREFIX, write_plugin

    from studio.core import registry

    manifest = '[backends.{}]\nformats = ["safetensors"]\n'
    write_plugin(tmp_path / "site", "studio_test_counting", manifest.format("counting"), COUNTING)
    write_plugin(
        tmp_path / "site",
        "studio_test_fails",
        manifest.format("fails"),
        'raise ImportError("needs a library")\n',
    )
    install_plugins(
        {
            "counting": "studio_test_counting.backend:Counting",
            "fails": "studio_test_fails.backend:Plugged",
        }
    )
    ours = [p for p in entry_points(group=registry.GROUP) if p.name in ("counting", "fails")]
    monkeypatch.setattr(registry, "entry_points", lambda group: ours)
    yield
    for name in [m for m in sys.modules if m.startswith(PREFIX)]:
        del sys.modules[name]


def test_cli_adds_lists_and_refuses(tmp_path, monkeypatch, capsys, counting_backend) -> None:
    from studio.api import EXIT_OK, EXIT_USAGE
    from studio.cli import main

    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))
    folder = tmp_path / "collection"
    folder.mkdir()
    checkpoint(folder / "a.safetensors", LAYERS)
    single = checkpoint(tmp_path / "b.safetensors", {"only.weight": (3,)})
    pipeline = tmp_path / "c"
    pipeline.mkdir()
    (pipeline / "model_index.json").write_text("{}")
    pickled = tmp_path / "d.ckpt"
    pickled.write_bytes(pickle.dumps({"w": 1}, protocol=2))
    assert main(["models", "add", str(pickled)]) == EXIT_USAGE
    assert "pickled PyTorch checkpoint" in capsys.readouterr().err
    assert main(["models", "add", str(folder)]) == EXIT_OK
    assert "(1 model in it)" in capsys.readouterr().out
    assert main(["models", "add", str(single)]) == EXIT_OK
    assert capsys.readouterr().out.strip() == "added b: 1-tensor net, safetensors"
    assert main(["models", "add", str(pipeline)]) == EXIT_OK
    assert capsys.readouterr().out.strip() == "added c: diffusers"  # no backend says what it is
    assert main(["models", "list", "--json"]) == EXIT_OK
    listed = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert {k: (v["architecture"], v["format"], v["backends"]) for k, v in listed.items()} == {
        "a": ("2-tensor net", SAFETENSORS, ["counting", "fails"]),
        "b": ("1-tensor net", SAFETENSORS, ["counting", "fails"]),
        "c": ("", DIFFUSERS, []),
    }
    assert listed["b"]["hash"] == hashlib.sha256(single.read_bytes()).hexdigest()[:10]
    assert main(["models", "list"]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("a  2-tensor net  safetensors  ")
    assert lines[2].startswith("c  diffusers  ")
