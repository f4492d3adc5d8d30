"""LoRAs on the ONNX SD backend: fused into the exported weights when the sessions are
built, they make the PyTorch backend's images with the same LoRAs (tiny SD and SDXL,
kohya files, LoCon convolutions too); weight 0 and no LoRA give the base images exactly,
switching sets back and forth too; each set is built once; exports made before LoRAs and
LoRAs of another family are refused before anything runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from contexts import Context
from support.backend_pair import torch_and_onnx
from support.random_loras import write_kohya
from support.random_sd import build_random_sd, build_random_sdxl

from sd_backends.backend import DiffusionBackend, load_diffusers_folder
from sd_backends.export_onnx import export
from sd_backends.onnx_backend import DiffusionOnnxBackend
from sd_backends.onnx_weight_map import lora_weights
from studio.api import GenerationRequest, ModelFileError, ModelLibrary, RequestError

torch.set_num_threads(1)
RAW = 2e-3  # the text-only tests' tolerance


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """Tiny SD and SDXL, their exports and kohya LoRAs for each (SD's also a LoCon)."""
    root = tmp_path_factory.mktemp("models")
    models = (("sd", build_random_sd, "SD 1.x"), ("xl", build_random_sdxl, "SDXL"))
    for name, build, family in models:
        build(root / name)
        export(load_diffusers_folder(root / name, torch.float32), root / f"{name}-onnx", family)
        write_kohya(root / name, root / f"{name}-style.safetensors", seed=1)
    write_kohya(root / "sd", root / "sd-locon.safetensors", seed=2, text=False, conv=True)
    return root


@pytest.fixture(scope="module")
def sd(root) -> tuple[DiffusionBackend, DiffusionOnnxBackend]:
    return torch_and_onnx(root, "sd")


def request(prompt: str = "a red cat", **fields) -> GenerationRequest:
    defaults = {"seed": 5, "count": 2, "steps": 3, "guidance": 5.0, "options": {"sampler": "DDIM"}}
    return GenerationRequest(prompt, **{**defaults, **fields})


def with_loras(backends, r: GenerationRequest, loras: list[tuple[str, float]]):
    """(ONNX's images, PyTorch's) of `r` with the LoRAs tagged in its prompt."""
    tags = " ".join(f"<lora:{name}:{weight:g}>" for name, weight in loras)
    tagged = r.replace(prompt=f"{r.prompt} {tags}")
    return backends[1].generate(tagged, Context()), backends[0].generate(tagged, Context())


def same(ours: list[np.ndarray], theirs: list[np.ndarray]) -> bool:
    return all(np.array_equal(a, b) for a, b in zip(ours, theirs, strict=True))


def assert_same(ours, theirs) -> None:
    for a, b in zip(ours, theirs, strict=True):
        assert a.seed == b.seed and np.abs(a.image - b.image).max() < RAW


def test_the_map_places_every_linear_and_conv_weight(root) -> None:
    pipeline = load_diffusers_folder(root / "xl", torch.float32)
    found = json.loads((root / "xl-onnx" / "lora_map.json").read_text())
    wanted = lora_weights(pipeline.unet, "unet")
    for part in ("text_encoder", "text_encoder_2"):
        wanted |= lora_weights(getattr(pipeline, part), part)
    assert found["refused"] == {}
    assert set(found["weights"]) | set(found["unused"]) == set(wanted)
    # SDXL reads the first text encoder's next-to-last layer: its last one is not exported
    assert all(k.startswith("text_encoder.encoder.layers.1.") for k in found["unused"])
    transposed = [k for k, v in found["weights"].items() if v["transposed"]]
    assert "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight" in transposed
    assert found["weights"]["unet.conv_in.weight"]["transposed"] is False


@pytest.mark.parametrize("loras", [[("sd-style", 0.8)], [("sd-style", 0.5), ("sd-locon", -0.7)]])
def test_sd_with_loras_makes_the_pytorch_backends_images(root, sd, loras) -> None:
    base = sd[1].generate(request(), Context())
    ours, theirs = with_loras(sd, request(), loras)
    assert_same(ours, theirs)
    assert np.abs(ours[0].image - base[0].image).max() > 0.05  # the LoRA acts


def test_sdxl_with_a_lora_makes_the_pytorch_backends_images(root) -> None:
    backends = torch_and_onnx(root, "xl")
    r = request(negative_prompt="blurry")
    ours, theirs = with_loras(backends, r, [("xl-style", 1.0)])
    assert_same(ours, theirs)


def test_weight_zero_and_switching_back_give_the_base_images_exactly(root, sd, monkeypatch):
    runtime = sd[1]._runtime
    built: list[str] = []  # the parts whose sessions are built
    original = runtime.session

    def session(graph: Path, *args):
        built.append(graph.parent.name)
        return original(graph, *args)

    monkeypatch.setattr(runtime, "session", session)

    def images(prompt: str) -> list[np.ndarray]:
        return [c.image for c in sd[1].generate(request(prompt), Context())]

    base = images("a red cat")
    assert same(images("a red cat <lora:sd-style:0>"), base)
    assert built == []  # weight 0: no LoRA at all
    styled = images("a red cat <lora:sd-style:0.8>")
    assert sorted(built) == ["text_encoder", "unet"]  # the parts it changes
    assert same(images("a red cat"), base)
    again = images("a red cat <lora:sd-style:0.8>")
    assert len(built) == 2  # the set's sessions were kept
    assert same(again, styled)
    images("a red cat <lora:sd-locon:0.8>")  # UNet only: the text encoder stays the base one
    assert built[2:] == ["unet"]
    switched = images("a red cat <lora:sd-style:0.8>")  # built again, the same
    assert same(switched, styled)
    assert same(images("a red cat"), base)


def test_refusals_come_before_anything_runs(root, sd, tmp_path) -> None:
    old = tmp_path / "exported-before-loras"
    shutil.copytree(root / "sd-onnx", old)
    (old / "lora_map.json").unlink()
    index = json.loads((old / "model_index.json").read_text())
    del index["lora_map"]
    (old / "model_index.json").write_text(json.dumps(index))
    backend = DiffusionOnnxBackend(threads=1)
    backend.model_library = lambda: ModelLibrary([root, tmp_path], [], tmp_path / "h.json")
    backend.load(old.name)
    assert backend.generate(request(count=1), Context())[0].image.shape == (64, 64, 3)
    cases = [
        (backend, "sd-style", r"exported to ONNX before LoRAs.*export it again"),
        (sd[1], "xl-style", r"xl-style.safetensors does not fit this model"),
        (sd[1], "sd-onnx", r"sd-onnx is a model, not a LoRA"),
    ]
    for runner, lora, message in cases:
        context = Context()
        with pytest.raises(ModelFileError, match=message):
            runner.generate(request(f"a red cat <lora:{lora}:1>"), context)
        assert context.steps == []
    with pytest.raises(RequestError, match="the prompt is empty"):  # tags alone
        sd[1].generate(request("<lora:sd-style:1>"), Context())
    base = sd[1].generate(request(), Context())  # a refused set leaves the base sessions
    assert sd[1]._runtime.sessions == sd[1]._runtime.base
    assert all(a.image.shape == (64, 64, 3) for a in base)
