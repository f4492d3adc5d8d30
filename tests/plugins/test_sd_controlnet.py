"""ControlNet on the PyTorch SD backend, with tiny random SD and SDXL models and random
ControlNets made from their UNets: the three file layouts, weight and window, several at
once, pictures (img2img, inpainting, an inpainting model), models they don't fit, pickles,
determinism per seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from contexts import Context
from support.pictures import box_mask, photo
from support.random_controlnets import (
    build_random_controlnet,
    save_controlnet_diffusers_file,
    save_controlnet_folder,
    save_controlnet_ldm_file,
)
from support.random_sd import build_random_sd, build_random_sdxl

from sd_backends import pictures
from sd_backends.backend import DiffusionBackend
from sd_backends.control_pipelines import picture_arguments
from sd_backends.controlnets import controlnet_family, is_controlnet, misfit
from studio.api import (
    Control,
    GenerationRequest,
    ModelFileError,
    ModelLibrary,
    PickleRefused,
    safetensors_shapes,
)
from studio.core.inputs import InputStore

torch.set_num_threads(1)

LAYOUTS = ("cn-folder", "cn-diffusers", "cn-ldm")


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """A library of each base model, its ControlNets beside it in every layout."""
    sd, xl = tmp_path_factory.mktemp("sd-models"), tmp_path_factory.mktemp("sdxl-models")
    build_random_sd(sd / "tiny")
    net = build_random_controlnet(sd / "tiny")
    save_controlnet_folder(net, sd / "cn-folder")
    save_controlnet_diffusers_file(net, sd / "cn-diffusers.safetensors")
    save_controlnet_ldm_file(net, sd / "cn-ldm.safetensors")
    save_controlnet_ldm_file(build_random_controlnet(sd / "tiny", seed=2), sd / "cn-other")
    build_random_sdxl(xl / "tiny-xl")
    save_controlnet_ldm_file(build_random_controlnet(xl / "tiny-xl"), xl / "cn-xl.safetensors", "")
    return {"sd": sd, "sdxl": xl}


def _backend(folder: Path, cache: Path, model: str = "") -> DiffusionBackend:
    backend = DiffusionBackend()
    backend.model_library = lambda: ModelLibrary([folder], [], cache / "hashes.json")
    backend.load(model)
    return backend


@pytest.fixture(scope="module")
def sd(folders, tmp_path_factory) -> DiffusionBackend:
    return _backend(folders["sd"], tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def sdxl(folders, tmp_path_factory) -> DiffusionBackend:
    return _backend(folders["sdxl"], tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> InputStore:
    return InputStore(tmp_path_factory.mktemp("inputs"))


def control(store: InputStore, model: str, picture=None, **fields) -> Control:
    """A control over `picture` (a photo by default) as the engine hands it over: map set."""
    image = store.add(picture if picture is not None else photo(64, 64, seed=7))
    return Control(model, image, map=image, **fields)


def request(*controls: Control, **fields) -> GenerationRequest:
    defaults = {
        "prompt": "a red cat",
        "backend": "diffusion",
        "seed": 5,
        "count": 1,
        "steps": 4,
        "guidance": 5.0,
        "width": 64,
        "height": 64,
        "controls": controls,
    }
    return GenerationRequest(**{**defaults, **fields})


def draw(backend: DiffusionBackend, *controls: Control, **fields) -> np.ndarray:
    return backend.generate(request(*controls, **fields), Context())[0].image


@pytest.fixture(scope="module")
def plain(sd) -> np.ndarray:
    """The SD model's image without a ControlNet."""
    return draw(sd)


def test_every_layout_loads_and_draws_the_same_image(sd, store, plain) -> None:
    made = [draw(sd, control(store, name)) for name in LAYOUTS]
    assert all(np.array_equal(made[0], other) for other in made[1:])
    assert np.abs(made[0] - plain).mean() > 0.01  # the control matters (images in [0, 1])


def test_weight_zero_is_exactly_the_image_without_control(sd, store, plain) -> None:
    assert np.array_equal(draw(sd, control(store, "cn-ldm", weight=0.0)), plain)
    half, full = (draw(sd, control(store, "cn-ldm", weight=w)) for w in (0.5, 1.0))
    assert not np.array_equal(half, full) and not np.array_equal(half, plain)


def test_start_and_end_restrict_the_control_to_their_steps(sd, store, plain) -> None:
    full = draw(sd, control(store, "cn-ldm"))
    early = draw(sd, control(store, "cn-ldm", end=0.5))
    late = draw(sd, control(store, "cn-ldm", start=0.5))
    for window in (early, late):
        assert not np.array_equal(window, full) and not np.array_equal(window, plain)
    assert not np.array_equal(early, late)


def test_two_controlnets_act_together(sd, store) -> None:
    one = draw(sd, control(store, "cn-ldm"))
    other = draw(sd, control(store, "cn-other", photo(64, 64, seed=8)))
    context = Context()
    both = (control(store, "cn-ldm"), control(store, "cn-other", photo(64, 64, seed=8)))
    made = sd.generate(request(*both, count=2), context)[0].image
    assert not np.array_equal(made, one) and not np.array_equal(made, other)
    assert context.steps[-1] == (8, 8) and context.previews  # progress over both images
    muted = (control(store, "cn-ldm"), control(store, "cn-other", weight=0.0))
    assert np.array_equal(draw(sd, *muted), one)  # a muted one adds nothing


def test_the_same_seed_draws_the_same_image(sd, store) -> None:
    controls = (control(store, "cn-folder"),)
    pair = sd.generate(request(*controls, count=2), Context())
    again = sd.generate(request(*controls, count=2), Context())
    assert all(np.array_equal(a.image, b.image) for a, b in zip(pair, again, strict=True))
    level = 1 / 255  # a batch's arithmetic may differ from one image's in the last bits
    assert np.allclose(pair[0].image, draw(sd, *controls), atol=level)
    assert np.allclose(pair[1].image, draw(sd, *controls, seed=6), atol=level)  # seed + i
    assert not np.allclose(pair[0].image, pair[1].image, atol=level)


def test_loaded_controlnets_are_kept_until_another_model_loads(folders, tmp_path) -> None:
    backend = _backend(folders["sd"], tmp_path)
    draw(backend, control(InputStore(tmp_path / "inputs"), "cn-ldm"), steps=1)
    net = next(iter(backend._controlnets._nets.values()))
    draw(backend, control(InputStore(tmp_path / "inputs"), "cn-ldm"), steps=1)
    assert next(iter(backend._controlnets._nets.values())) is net
    backend.load("tiny")
    assert len(backend._controlnets) == 0


# -- pictures ------------------------------------------------------------------


def picture_request(store: InputStore, picture, mask=None, *controls, **fields):
    size = picture.size
    image = store.add(picture)
    return request(
        *controls,
        image=image,
        mask=None if mask is None else store.add(mask, mask=True),
        width=size[0],
        height=size[1],
        **fields,
    )


def test_img2img_with_the_picture_as_its_control(sd, store) -> None:
    picture = photo(80, 64, seed=3)
    plain = sd.generate(picture_request(store, picture, strength=0.6), Context())[0].image
    controls = (control(store, "cn-ldm", picture),)
    context = Context()
    made = sd.generate(picture_request(store, picture, None, *controls, strength=0.6), context)
    assert made[0].image.shape == (64, 80, 3)
    assert not np.array_equal(made[0].image, plain)
    assert context.steps[-1] == (2, 2)  # the last steps x strength


@pytest.mark.parametrize("area", ["whole", "masked"])
def test_inpainting_with_control_keeps_the_picture_outside_the_mask(sd, store, area) -> None:
    size = (120, 80)
    picture, mask = photo(*size, seed=2), box_mask(size, (70, 20, 110, 60))
    options = {"inpaint_area": area, "inpaint_padding": 8, "mask_blur": 2}
    plain = sd.generate(picture_request(store, picture, mask, options=options), Context())
    controls = (control(store, "cn-ldm", picture),)
    made = sd.generate(picture_request(store, picture, mask, *controls, options=options), Context())
    outside = np.asarray(mask) < 128
    assert np.array_equal(made[0].image[outside], np.asarray(picture)[outside])
    assert not np.array_equal(made[0].image[~outside], plain[0].image[~outside])


def test_a_control_map_covers_the_region_the_picture_does(store) -> None:
    size = (150, 100)
    picture, mask = photo(*size, seed=4), box_mask(size, (90, 20, 130, 60))
    fields = {"options": {"inpaint_area": "masked", "inpaint_padding": 8}}
    request_ = picture_request(store, picture, mask, **fields)
    job = pictures.PictureJob.plan(request_, native=32, multiple=8)
    assert not job.canvas.whole
    made = picture_arguments([control(store, "any", picture)], job.canvas)["control_image"]
    assert np.array_equal(np.asarray(made), (job.image * 255 + 0.5).astype(np.uint8))


def test_an_inpainting_model_takes_a_controlnet(folders, store, tmp_path) -> None:
    build_random_sd(tmp_path / "tiny-inpainting", inpainting=True)
    backend = _backend(tmp_path, tmp_path, model="tiny-inpainting")
    assert backend._pipeline.unet.config.in_channels == 9
    size = (64, 64)
    picture, mask = photo(*size, seed=4), box_mask(size, (10, 10, 50, 40))
    plain = backend.generate(picture_request(store, picture, mask), Context())[0].image
    cn = str(folders["sd"] / "cn-ldm.safetensors")  # made for its base: the UNet's encoder
    controls = (control(store, cn, picture),)
    made = backend.generate(picture_request(store, picture, mask, *controls), Context())[0].image
    outside = np.asarray(mask) < 128
    assert np.array_equal(made[outside], np.asarray(picture)[outside])
    assert not np.array_equal(made, plain)


# -- SDXL, models a ControlNet doesn't fit, pickles ------------------------------


def test_sdxl_with_a_controlnet_of_its_unet(sdxl, store) -> None:
    plain = draw(sdxl)
    made = draw(sdxl, control(store, "cn-xl"))
    assert not np.array_equal(made, plain)
    assert np.array_equal(draw(sdxl, control(store, "cn-xl")), made)
    assert np.array_equal(draw(sdxl, control(store, "cn-xl", weight=0.0)), plain)
    picture = photo(64, 64, seed=3)
    controls = (control(store, "cn-xl", picture),)
    again = sdxl.generate(picture_request(store, picture, None, *controls, strength=0.5), Context())
    assert again[0].image.shape == (64, 64, 3)


def test_a_controlnet_for_another_model_is_refused_saying_why(sd, sdxl, folders, store) -> None:
    sd_net, xl_net = folders["sd"] / "cn-ldm.safetensors", folders["sdxl"] / "cn-xl.safetensors"
    why = r"cn-ldm.safetensors is a ControlNet for another model \(its cross-attention takes "
    with pytest.raises(ModelFileError, match=why + r"32 features, this model's 80\)"):
        draw(sdxl, control(store, str(sd_net)))
    with pytest.raises(ModelFileError, match="takes 80 features, this model's 32"):
        draw(sd, control(store, str(xl_net)))
    with pytest.raises(ModelFileError, match="for another model"):
        draw(sdxl, control(store, str(folders["sd"] / "cn-folder")))
    with pytest.raises(ModelFileError, match="is a model, not a ControlNet"):
        draw(sd, control(store, "tiny"))


def test_each_misfit_is_named(sd, sdxl, folders) -> None:
    shapes = safetensors_shapes(folders["sd"] / "cn-diffusers.safetensors")
    assert misfit(shapes, sd._pipeline.unet) == ""
    attention = ("attn2.to_k.weight", "attn2.to_v.weight")
    wider = {k: [v[0], 80] if k.endswith(attention) else v for k, v in shapes.items()}
    assert misfit(wider, sdxl._pipeline.unet) == (
        "it lacks the added size conditioning this model (SDXL) takes"
    )
    narrow = {**shapes, "down_blocks.1.resnets.0.conv1.weight": [48, 16, 3, 3]}
    assert misfit(narrow, sd._pipeline.unet) == (
        "its blocks are 16, 48 channels wide, this model's 16, 32"
    )
    fewer = {k: v for k, v in shapes.items() if not k.startswith("controlnet_down_blocks.3.")}
    assert misfit(fewer, sd._pipeline.unet) == (
        "it adds residuals of 16, 16, 16 channels to the UNet's blocks, "
        "this model takes 16, 16, 16, 32"
    )


def test_pickled_controlnets_are_refused(sd, folders, store, tmp_path) -> None:
    from safetensors.torch import load_file

    folder = tmp_path / "cn-pickled"
    folder.mkdir()
    (folder / "config.json").write_bytes((folders["sd"] / "cn-folder" / "config.json").read_bytes())
    weights = load_file(folders["sd"] / "cn-folder" / "diffusion_pytorch_model.safetensors")
    torch.save(weights, folder / "diffusion_pytorch_model.bin")
    with pytest.raises(PickleRefused, match="pickled weights"):
        draw(sd, control(store, str(folder)))
    torch.save(weights, tmp_path / "cn.pth")
    with pytest.raises(PickleRefused):
        draw(sd, control(store, str(tmp_path / "cn.pth")))


def test_controlnet_files_are_told_by_their_tensors(folders) -> None:
    for name in ("cn-diffusers.safetensors", "cn-ldm.safetensors"):
        shapes = safetensors_shapes(folders["sd"] / name)
        assert is_controlnet(shapes) and controlnet_family(shapes) == "unknown"  # 32 wide
    assert not is_controlnet(["model.diffusion_model.input_blocks.0.0.weight"])
    width = "control_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
    assert controlnet_family({width: [320, 768]}) == "SD 1.x"
    assert controlnet_family({width: [320, 1024]}) == "SD 2.x"
    xl = {width.replace("1.1", "4.1"): [640, 2048], "control_model.label_emb.0.0.weight": [1, 2]}
    assert controlnet_family(xl) == "SDXL"
