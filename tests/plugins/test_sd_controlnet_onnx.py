"""ControlNets on the ONNX SD backend: the PyTorch backend's images from the same control
map and seed (tiny SD and SDXL and random ControlNets, exported with the real export code),
text alone and with pictures, one and two ControlNets with their weights and windows,
pooled conditions (guess mode); zeros in the UNet without one; exports made before
ControlNets, ControlNets of another family and ControlNets not exported refused before
anything runs; no torch on the path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from contexts import Context
from support.backend_pair import torch_and_onnx
from support.pictures import box_mask, photo
from support.random_controlnets import build_random_controlnet, save_controlnet_folder
from support.random_loras import write_kohya
from support.random_sd import build_random_sd, build_random_sdxl

from sd_backends import export_onnx
from sd_backends.architecture import CONTROLNET, SDXL, kind
from sd_backends.backend import DiffusionBackend, load_diffusers_folder
from sd_backends.export_onnx import export, export_controlnet
from sd_backends.onnx_backend import DiffusionOnnxBackend
from studio.api import Control, GenerationRequest, ModelFileError, ModelLibrary
from studio.core.inputs import InputStore
from studio.core.model_files import identify

torch.set_num_threads(1)
RAW = 2e-3  # the text-only tests' tolerance (and the picture tests' on the model's output)
FINAL = 2  # levels of 255 in a picture request's composited result
SIZE = (96, 64)  # a picture's size, not the model's


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """Each tiny model and ControlNet as a diffusers folder and as an ONNX export."""
    root = tmp_path_factory.mktemp("models")
    models = (("sd", build_random_sd, "SD 1.x"), ("xl", build_random_sdxl, SDXL))
    for name, build, family in models:
        build(root / name)
        export(load_diffusers_folder(root / name, torch.float32), root / f"{name}-onnx", family)
        for seed in (1, 2) if name == "sd" else (1,):
            net = build_random_controlnet(root / name, seed=seed)
            save_controlnet_folder(net, root / f"{name}-cn{seed}")
            export_controlnet(net, root / f"{name}-cn{seed}-onnx", family)
    return root


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> InputStore:
    return InputStore(tmp_path_factory.mktemp("inputs"))


@pytest.fixture(scope="module")
def sd(root) -> tuple[DiffusionBackend, DiffusionOnnxBackend]:
    return torch_and_onnx(root, "sd")


def control(store: InputStore, model: str, seed: int = 7, **fields) -> Control:
    """A control whose map the engine made (a random picture: every pixel counts)."""
    picture = store.add(photo(*SIZE, seed=seed))
    return Control(model, picture, map=picture, **fields)


def request(controls: tuple[Control, ...] = (), **fields) -> GenerationRequest:
    defaults = {"prompt": "a red cat", "seed": 5, "count": 2, "steps": 4, "guidance": 5.0}
    return GenerationRequest(**{**defaults, "controls": controls, **fields})


def onnx_twin(r: GenerationRequest) -> GenerationRequest:
    """The request naming each ControlNet's export in place of its diffusers folder."""
    return r.replace(controls=tuple(replace(c, model=f"{c.model}-onnx") for c in r.controls))


def assert_same(ours, theirs, tolerance: float = RAW) -> None:
    for a, b in zip(ours, theirs, strict=True):
        assert a.seed == b.seed and a.image.shape == b.image.shape
        assert np.abs(a.image.astype(np.float32) - b.image.astype(np.float32)).max() < tolerance


def test_a_controlnet_export_is_listed_as_one(root, sd) -> None:
    folder = root / "sd-cn1-onnx"
    index = json.loads((folder / "model_index.json").read_text())
    assert index["kind"] == "controlnet" and index["architecture"] == "SD 1.x"
    assert index["extra_inputs"] == [] and index["conditioning_scale_factor"] == 2
    assert identify(folder).format == "onnx" and kind(identify(folder)) == CONTROLNET
    model_index = json.loads((root / "sd-onnx" / "model_index.json").read_text())
    assert index["residuals"] == model_index["unet_control_residuals"]
    assert model_index["unet_control_inputs"] == len(index["residuals"])
    listed = sd[1].addons()
    controlnets = {a.name: a.architecture for a in listed if a.kind == CONTROLNET}
    assert controlnets["sd-cn1-onnx"] == "SD 1.x" and controlnets["xl-cn1-onnx"] == SDXL
    assert "sd-cn1-onnx" not in {m.name for m in sd[1].models()}
    xl = json.loads((root / "xl-cn1-onnx" / "model_index.json").read_text())
    assert xl["extra_inputs"] == ["text_embeds", "time_ids"] and xl["text_embeds_dim"] == 48


@pytest.mark.parametrize("sampler", ["Euler", "DDIM"])
@pytest.mark.parametrize("window", [(1.0, 0.0, 1.0), (0.7, 0.25, 0.75)])
def test_text_with_a_controlnet_makes_the_pytorch_backends_images(sd, store, sampler, window):
    weight, start, end = window
    c = control(store, "sd-cn1", weight=weight, start=start, end=end)
    r = request((c,), options={"sampler": sampler}, width=SIZE[0], height=SIZE[1])
    ours = sd[1].generate(onnx_twin(r), Context())
    assert_same(ours, sd[0].generate(r, Context()))
    plain = sd[1].generate(r.replace(controls=()), Context())
    assert np.abs(ours[0].image - plain[0].image).max() > 0.01  # the ControlNet acts


def test_two_controlnets_sum_with_their_weights_and_windows(sd, store) -> None:
    controls = (
        control(store, "sd-cn1", weight=0.6, end=0.5),
        control(store, "sd-cn2", seed=8, weight=1.2, start=0.25),
    )
    r = request(controls, options={"sampler": "DPM++ 2M Karras"}, guidance=1.0)  # unguided
    assert_same(sd[1].generate(onnx_twin(r), Context()), sd[0].generate(r, Context()))


def test_a_controlnet_of_pooled_conditions_acts_on_the_conditional_half(root, sd, store):
    """diffusers' guess mode (a shuffle ControlNet's `global_pool_conditions`): its
    residuals are averaged over the picture, and zeros for the unconditional batch."""
    from diffusers import ControlNetModel

    net = build_random_controlnet(root / "sd", seed=3)
    pooled = ControlNetModel.from_config({**net.config, "global_pool_conditions": True})
    pooled.load_state_dict(net.state_dict())
    save_controlnet_folder(pooled, root / "sd-pool")
    export_controlnet(pooled, root / "sd-pool-onnx", "SD 1.x")
    for guidance in (5.0, 1.0):
        r = request((control(store, "sd-pool", weight=0.9),), guidance=guidance)
        assert_same(sd[1].generate(onnx_twin(r), Context()), sd[0].generate(r, Context()))


def test_weight_zero_and_no_controlnet_give_the_plain_image_exactly(sd, store) -> None:
    r = request(options={"sampler": "Euler"})
    plain = sd[1].generate(r, Context())
    unused = (control(store, "sd-cn1-onnx", weight=0.0),)
    zero = sd[1].generate(r.replace(controls=unused), Context())
    assert all(np.array_equal(a.image, b.image) for a, b in zip(plain, zero, strict=True))


def test_sdxl_with_a_controlnet_makes_the_pytorch_backends_images(root, store) -> None:
    backends = torch_and_onnx(root, "xl")
    c = control(store, "xl-cn1", weight=0.8)
    r = request((c,), options={"sampler": "DDIM"}, negative_prompt="blurry")
    assert_same(backends[1].generate(onnx_twin(r), Context()), backends[0].generate(r, Context()))


@pytest.mark.parametrize("area", ["img2img", "masked"])
def test_pictures_with_a_controlnet_make_the_pytorch_backends_images(sd, store, outputs, area):
    picture = store.add(photo(*SIZE, seed=3))
    mask = None if area == "img2img" else store.add(box_mask(SIZE, (50, 10, 80, 40)), mask=True)
    options = {"sampler": "Euler", "inpaint_area": "masked", "inpaint_padding": 8}
    c = control(store, "sd-cn1", weight=0.9, start=0.0, end=0.75)
    r = request((c,), image=picture, mask=mask, strength=0.75, options=options)
    r = r.replace(width=SIZE[0], height=SIZE[1])
    ours = sd[1].generate(onnx_twin(r), Context())
    count = len(outputs)
    theirs = sd[0].generate(r, Context())
    for a, b in zip(outputs[:count], outputs[count:], strict=True):
        assert a.shape == b.shape and np.abs(a - b).max() < RAW
    assert_same(ours, theirs, FINAL + 0.5)
    assert ours[0].image.shape == (SIZE[1], SIZE[0], 3)


def test_an_inpainting_model_with_a_controlnet_makes_the_pytorch_backends_images(
    root, store, outputs
):
    """A 9-channel UNet takes the mask and masked picture beside the latents; the base
    model's ControlNet sees the latents alone."""
    build_random_sd(root / "inpaint", inpainting=True)
    export(load_diffusers_folder(root / "inpaint", torch.float32), root / "inpaint-onnx")
    backends = torch_and_onnx(root, "inpaint")
    picture = store.add(photo(*SIZE, seed=4))
    mask = store.add(box_mask(SIZE, (20, 10, 60, 50)), mask=True)
    c = control(store, "sd-cn1", weight=0.8)
    r = request((c,), image=picture, mask=mask, options={"sampler": "DDIM", "mask_blur": 2})
    r = r.replace(width=SIZE[0], height=SIZE[1])
    ours = backends[1].generate(onnx_twin(r), Context())
    count = len(outputs)
    theirs = backends[0].generate(r, Context())
    for a, b in zip(outputs[:count], outputs[count:], strict=True):
        assert a.shape == b.shape and np.abs(a - b).max() < RAW
    assert_same(ours, theirs, FINAL + 0.5)


def test_refusals_come_before_anything_runs(root, sd, store, tmp_path, monkeypatch) -> None:
    old = tmp_path / "exported-before-controlnets"  # a UNet without residual inputs
    monkeypatch.setattr(export_onnx, "control_residuals", lambda config: [])
    export(load_diffusers_folder(root / "sd", torch.float32), old)
    index = json.loads((old / "model_index.json").read_text())
    del index["unet_control_inputs"], index["unet_control_residuals"]
    (old / "model_index.json").write_text(json.dumps(index))
    backend = DiffusionOnnxBackend(threads=1)
    backend.model_library = lambda: ModelLibrary([root, tmp_path], [], tmp_path / "h.json")
    backend.load(old.name)
    assert backend.generate(request(count=1), Context())[0].image.shape == (64, 64, 3)
    cases = [
        (backend, "sd-cn1-onnx", r"exported to ONNX before ControlNets.*export it again"),
        (sd[1], "xl-cn1-onnx", r"ControlNet xl-cn1-onnx \(SDXL\) does not fit sd-onnx"),
        (sd[1], "sd-cn1", r"sd-cn1 is diffusers: .*ControlNets exported to ONNX"),
        (sd[1], "sd-onnx", r"sd-onnx is a model, not a ControlNet"),
    ]
    for runner, model, message in cases:
        context = Context()
        with pytest.raises(ModelFileError, match=message):
            runner.generate(request((control(store, model),)), context)
        assert context.steps == []


def test_controlnets_and_loras_on_onnx_never_import_torch(root, tmp_path) -> None:
    write_kohya(root / "sd", tmp_path / "style.safetensors")
    script = f"""
import sys
from pathlib import Path
from PIL import Image
from sd_backends.onnx_backend import DiffusionOnnxBackend
from studio.api import Control, GenerationRequest, ModelLibrary
from studio.core.inputs import InputStore
backend = DiffusionOnnxBackend(threads=1)
folders = [Path({str(root)!r}), Path({str(tmp_path)!r})]
backend.model_library = lambda: ModelLibrary(folders, [], Path({str(tmp_path / "h.json")!r}))
backend.load("sd-onnx")
store = InputStore(Path({str(tmp_path / "inputs")!r}))
picture = store.add(Image.new("RGB", (48, 40), "red"))
class Ctx:
    cancelled = False
    device = "cpu"
    def check_cancelled(self): pass
    def progress(self, step, total, phase="steps"): pass
    def preview(self, image): pass
control = Control("sd-cn1-onnx", picture, map=picture)
request = GenerationRequest("a red cat <lora:style:0.8>", seed=1, count=1, steps=2,
    guidance=3.0, width=48, height=40, controls=(control,))
(image,) = backend.generate(request, Ctx())
(image,) = backend.generate(request.replace(image=picture, strength=0.5), Ctx())
assert image.image.shape == (40, 48, 3)
assert "torch" not in sys.modules, "torch was imported"
print("ok")
"""
    here = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(here)}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=here, capture_output=True, text=True, env=env
    )
    assert done.stdout.strip() == "ok", done.stderr
