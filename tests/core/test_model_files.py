"""Model files identified by content; pickles, broken safetensors and escaping ONNX refused."""

from __future__ import annotations

import hashlib
import json
import pickle
import resource
import struct
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from studio.core.model_files import (
    DIFFUSERS,
    ONNX,
    SAFETENSORS,
    SD1,
    SD2,
    SDXL,
    UNKNOWN,
    ModelFileError,
    PickleRefused,
    identify,
)
from studio.core.models import ModelLibrary

CROSS_ATTENTION = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"


def checkpoint(path: Path, tensors: dict[str, tuple[int, ...]]) -> Path:
    save_file({k: np.zeros(shape, np.float16) for k, shape in tensors.items()}, str(path))
    return path


class Payload:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


@pytest.mark.parametrize(
    ("tensors", "architecture"),
    [
        ({CROSS_ATTENTION: (320, 768), "first_stage_model.decoder.conv_in.bias": (4,)}, SD1),
        ({CROSS_ATTENTION: (320, 1024)}, SD2),
        ({"conditioner.embedders.1.model.ln_final.weight": (8,), CROSS_ATTENTION: (8, 2048)}, SDXL),
        ({"some.other.weight": (3, 3)}, UNKNOWN),
    ],
)
def test_single_file_architecture_from_names_and_shapes(tmp_path, tensors, architecture) -> None:
    info = identify(checkpoint(tmp_path / "model.bin", tensors))  # the extension says nothing
    assert (info.format, info.architecture, info.name) == (SAFETENSORS, architecture, "model")


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
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])], [weight],
    )  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(helper.make_model(graph), str(path))


def _onnx_folder(root: Path, unet_location: str = "weights.bin") -> Path:
    for part in ("text_encoder", "unet", "vae_decoder"):
        (root / part).mkdir(parents=True, exist_ok=True)
        (root / part / "weights.bin").write_bytes(bytes(8))
        _onnx_graph(root / part / "model.onnx", unet_location if part == "unet" else "weights.bin")
    return root


def test_onnx_folders_whose_weights_point_outside_are_refused(tmp_path) -> None:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(bytes(8))
    assert identify(_onnx_folder(tmp_path / "fine")).format == ONNX
    for name, location in (("dotdot", "../../secret.bin"), ("absolute", str(secret))):
        with pytest.raises(ModelFileError, match="point outside the model folder"):
            identify(_onnx_folder(tmp_path / name, location))
    linked = _onnx_folder(tmp_path / "linked", "link.bin")
    (linked / "unet" / "link.bin").symlink_to(secret)
    with pytest.raises(ModelFileError, match="point outside the model folder"):
        identify(linked)
    (tmp_path / "fine" / "vae_decoder" / "model.onnx").unlink()
    with pytest.raises(ModelFileError, match=r"lacks vae_decoder/model\.onnx"):
        identify(tmp_path / "fine")


def test_diffusers_folders_say_their_architecture(tmp_path) -> None:
    for name, pipeline, width, expected in (
        ("sd15", "StableDiffusionPipeline", 768, SD1),
        ("sd21", "StableDiffusionPipeline", 1024, SD2),
        ("sdxl", "StableDiffusionXLPipeline", 2048, SDXL),
    ):
        folder = tmp_path / name
        (folder / "unet").mkdir(parents=True)
        (folder / "model_index.json").write_text(json.dumps({"_class_name": pipeline}))
        (folder / "unet" / "config.json").write_text(json.dumps({"cross_attention_dim": width}))
        info = identify(folder)
        assert (info.format, info.architecture, info.size > 0) == (DIFFUSERS, expected, True)
    with pytest.raises(ModelFileError, match="not a model"):
        identify(tmp_path)


def test_library_lists_models_refusals_and_short_hashes(tmp_path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    model = checkpoint(folder / "dream.safetensors", {CROSS_ATTENTION: (320, 768)})
    (folder / "notes.txt").write_text("not a model")
    (folder / "old.ckpt").write_bytes(pickle.dumps({"w": 1}, protocol=2))
    added = checkpoint(tmp_path / "elsewhere.safetensors", {CROSS_ATTENTION: (320, 1024)})
    library = ModelLibrary([folder, tmp_path / "missing"], [added], tmp_path / "hashes.json")
    entries = {e.path.name: e for e in library.entries()}
    assert set(entries) == {"dream.safetensors", "old.ckpt", "elsewhere.safetensors"}
    assert "pickled" in entries["old.ckpt"].error and entries["old.ckpt"].info is None
    info = entries["dream.safetensors"].info
    expected = hashlib.sha256(model.read_bytes()).hexdigest()[:10]
    assert library.short_hash(info) == expected
    assert expected in (tmp_path / "hashes.json").read_text()  # cached
    assert library.find("dream") == info and library.find(expected) == info
    assert library.find(str(added)).architecture == SD2
    with pytest.raises(ModelFileError, match="no model named"):
        library.find("nothing")
    checkpoint(model, {CROSS_ATTENTION: (320, 768), "extra": (2,)})  # changed: hashed anew
    assert library.short_hash(info) == hashlib.sha256(model.read_bytes()).hexdigest()[:10]


def test_cli_adds_lists_and_refuses(tmp_path, monkeypatch, capsys) -> None:
    from studio.api import EXIT_OK, EXIT_USAGE
    from studio.cli import main

    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))
    folder = tmp_path / "collection"
    folder.mkdir()
    checkpoint(folder / "a.safetensors", {CROSS_ATTENTION: (320, 768)})
    single = checkpoint(tmp_path / "b.safetensors", {CROSS_ATTENTION: (320, 1024)})
    pickled = tmp_path / "c.ckpt"
    pickled.write_bytes(pickle.dumps({"w": 1}, protocol=2))
    assert main(["models", "add", str(pickled)]) == EXIT_USAGE
    assert "pickled PyTorch checkpoint" in capsys.readouterr().err
    assert main(["models", "add", str(folder)]) == EXIT_OK
    assert "1 models in it" in capsys.readouterr().out
    assert main(["models", "add", str(single)]) == EXIT_OK
    capsys.readouterr()
    assert main(["models", "list", "--json"]) == EXIT_OK
    listed = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert {k: v["architecture"] for k, v in listed.items()} == {"a": SD1, "b": SD2}
    assert listed["b"]["hash"] == hashlib.sha256(single.read_bytes()).hexdigest()[:10]
