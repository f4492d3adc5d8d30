"""The Stable-Diffusion backend on a tiny pipeline built here with random weights."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from contexts import Context
from support.random_sd import build_random_sd

from sd_backends.backend import DiffusionBackend
from sd_backends.noise import initial_noise
from sd_backends.schedulers import SAMPLERS
from studio.api import Cancelled, GenerationRequest, ModelFileError, ModelLibrary

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    build_random_sd(folder / "tiny")
    return folder


@pytest.fixture(scope="module")
def backend(models, tmp_path_factory) -> DiffusionBackend:
    cache = tmp_path_factory.mktemp("cache") / "hashes.json"
    backend = DiffusionBackend()
    backend.model_library = lambda: ModelLibrary([models], [], cache)
    backend.load("")  # the first model in the library
    return backend


def request(**fields) -> GenerationRequest:
    defaults = {
        "prompt": "a red cat",
        "backend": "diffusion",
        "seed": 5,
        "count": 2,
        "candidates": 2,
        "steps": 3,
        "guidance": 5.0,
    }
    return GenerationRequest(**{**defaults, **fields})


@pytest.mark.parametrize("sampler", ["Euler", "Euler a"])  # the second adds noise each step
def test_each_image_has_its_own_seed_alone_or_in_a_batch(backend, sampler) -> None:
    options = {"sampler": sampler}
    batch = backend.generate(request(options=options), Context())
    again = backend.generate(request(options=options), Context())
    alone = backend.generate(request(seed=6, count=1, candidates=1, options=options), Context())
    assert [c.seed for c in batch] == [5, 6]
    assert batch[0].image.shape == (64, 64, 3)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(batch, again, strict=True))
    assert np.array_equal(alone[0].image, batch[1].image)  # exactly: `--from` needs it
    assert not np.allclose(batch[0].image, batch[1].image)


def test_same_images_as_diffusers_called_directly(backend) -> None:
    ours = backend.generate(request(count=1, candidates=1, negative_prompt="blurry"), Context())
    pipe = backend._pipeline
    noise = torch.from_numpy(initial_noise([5], (4, 32, 32)))
    direct = pipe(
        "a red cat",
        negative_prompt="blurry",
        height=64,
        width=64,
        num_inference_steps=3,
        guidance_scale=5.0,
        latents=noise,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
    ).images
    assert np.allclose(ours[0].image, direct[0], atol=1e-6)


def test_every_sampler_runs_and_is_recorded(backend) -> None:
    images = {}
    for name in SAMPLERS:
        r = request(count=1, candidates=1, options={"sampler": name})
        images[name] = backend.generate(r, Context())[0].image
        assert backend.sampler_name(r) == name
        assert np.isfinite(images[name]).all()
    assert not np.allclose(images["Euler"], images["DDIM"])
    again = backend.generate(request(count=1, candidates=1), Context())[0].image
    assert np.array_equal(again, images["Euler"])  # no sampler's settings carried over


def test_memory_options_apply_per_request(backend) -> None:
    plain = backend.generate(request(), Context())
    sliced = backend.generate(request(options={"attention_slicing": True}), Context())
    assert all(np.allclose(a.image, b.image, atol=1e-5) for a, b in zip(plain, sliced, strict=True))
    tiled = backend.generate(request(options={"vae_tiling": True}), Context())  # blends tiles
    assert tiled[0].image.shape == plain[0].image.shape and np.isfinite(tiled[0].image).all()
    assert backend._pipeline.vae.use_tiling
    backend.generate(request(count=1, candidates=1), Context())
    assert not backend._pipeline.vae.use_tiling  # per request, not sticky


def test_progress_previews_and_cancel_before_decoding(backend, monkeypatch) -> None:
    ctx = Context()
    backend.generate(request(steps=4), ctx)
    assert ctx.steps == [(i, 8) for i in range(1, 9)]  # one image, then the other
    assert ctx.previews[0].shape == (32, 32, 3)  # its latents (this VAE: 1/2)
    decoded = []
    vae = backend._pipeline.vae
    real_decode = vae.decode
    monkeypatch.setattr(vae, "decode", lambda *a, **k: decoded.append(1) or real_decode(*a, **k))
    with pytest.raises(Cancelled):
        backend.generate(request(steps=10), Context(cancel_at=4))
    assert decoded == []


def test_images_are_made_one_at_a_time_and_out_of_memory_says_so(backend, monkeypatch) -> None:
    """A batch's matrix products differ from one image's in the last bits (kernels are
    chosen by shape): made one at a time, each image is the one its seed makes alone."""
    pipe = backend._pipeline
    real_call = type(pipe).__call__
    batches = []

    def call(self, *args, **kwargs):
        batches.append(kwargs["num_images_per_prompt"])
        return real_call(self, *args, **kwargs)

    monkeypatch.setattr(type(pipe), "__call__", call)
    backend.generate(request(count=3, candidates=3), Context())
    assert batches == [1, 1, 1]

    def out_of_memory(self, *args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(type(pipe), "__call__", out_of_memory)
    with pytest.raises(MemoryError, match="out of GPU memory for one image"):
        backend.generate(request(), Context())


def test_models_listed_with_hash_and_pickled_folders_refused(backend, models, tmp_path) -> None:
    (listed,) = backend.models()
    assert (listed.name, listed.format, listed.architecture) == ("tiny", "diffusers", "unknown")
    info = backend.model_info(listed.ref)
    assert len(info.hash) == 10
    pickled = tmp_path / "pickled"
    shutil.copytree(models / "tiny", pickled)
    weights = pickled / "unet" / "diffusion_pytorch_model.safetensors"
    weights.unlink()
    marker = tmp_path / "payload-ran"
    (weights.with_suffix(".bin")).write_bytes(pickle.dumps(_Payload(marker)))
    other = DiffusionBackend()
    other.model_library = lambda: ModelLibrary([], [], tmp_path / "h.json")
    with pytest.raises(ModelFileError, match="cannot load pickled"):
        other.load(str(pickled))
    assert not marker.exists()


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_cli_picks_the_backend_from_the_model_and_records_its_hash(
    models, tmp_path, monkeypatch, capsys
) -> None:
    import json

    from studio.api import EXIT_OK, EXIT_USAGE
    from studio.cli import main

    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))
    shutil.copytree(models / "tiny", tmp_path / "home" / "data" / "models" / "tiny")
    args = [
        "generate",
        "a blue dog",
        "--model",
        "tiny",
        "--steps",
        "2",
        "--count",
        "1",
        "--candidates",
        "1",
        "--seed",
        "9",
        "--json",
    ]
    assert main(args) == EXIT_OK
    (image,) = json.loads(capsys.readouterr().out)["images"]
    assert image["backend"] == "diffusion"
    assert main(["history", "show", str(image["id"]), "--json"]) == EXIT_OK
    shown = json.loads(capsys.readouterr().out)
    assert (shown["sampler"], shown["request"]["guidance"], shown["seed"]) == ("Euler", 7.0, 9)
    assert len(shown["model_hash"]) == 10
    assert shown["model"] == str(tmp_path / "home" / "data" / "models" / "tiny")
    assert main(["generate", "x", "--model", "nothing-like-it"]) == EXIT_USAGE
    assert "no model named" in capsys.readouterr().err


def test_damaged_folders_get_clear_errors(models, tmp_path) -> None:
    from safetensors.torch import load_file, save_file

    loader = DiffusionBackend()
    loader.model_library = lambda: ModelLibrary([], [], tmp_path / "h.json")
    wrong = tmp_path / "wrong-shapes"
    shutil.copytree(models / "tiny", wrong)
    weights = wrong / "unet" / "diffusion_pytorch_model.safetensors"
    tensors = load_file(weights)
    tensors["conv_in.weight"] = torch.zeros(3, 3)  # not what the configuration says
    save_file(tensors, weights)
    with pytest.raises(ModelFileError, match="cannot load wrong-shapes"):
        loader.load(str(wrong))
    truncated = tmp_path / "truncated"
    shutil.copytree(models / "tiny", truncated)
    weights = truncated / "vae" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ModelFileError, match="cannot load truncated"):
        loader.load(str(truncated))
    poisoned = tmp_path / "poisoned"
    shutil.copytree(models / "tiny", poisoned)
    weights = poisoned / "unet" / "diffusion_pytorch_model.safetensors"
    tensors = load_file(weights)
    tensors["conv_out.bias"][0] = float("nan")
    save_file(tensors, weights)
    with pytest.raises(ModelFileError, match=r"unet weight conv_out\.bias holds NaN"):
        loader.load(str(poisoned))
    (truncated / "unet" / "config.json").unlink()
    with pytest.raises(ModelFileError, match=r"cannot read unet/config\.json"):
        loader.load(str(truncated))
    loader.model_library = _library(tmp_path, tmp_path / "h.json")  # still listed, as unknown
    assert {m.name: m.architecture for m in loader.models()}["truncated"] == "unknown"


def _library(folder: Path, cache: Path):
    return lambda: ModelLibrary([folder] if folder else [], [], cache)


def test_single_file_checkpoints_load_and_make_the_same_images(
    backend, models, tmp_path, monkeypatch
) -> None:
    from support.random_sd import save_single_file

    from sd_backends import single_file

    checkpoint = save_single_file(models / "tiny", tmp_path / "tiny-single.bin")  # any name
    loader = DiffusionBackend()
    loader.model_library = _library(tmp_path, tmp_path / "h.json")
    assert [(m.name, m.architecture) for m in loader.models()] == [("tiny-single", "SD 1.x")]
    with pytest.raises(ModelFileError, match=r"cannot load tiny-single\.bin as SD 1\.x: "):
        loader.load(str(checkpoint))  # SD 1.x's real shapes: not this tiny model's
    # the tiny model's own configuration stands in for the shipped one
    monkeypatch.setitem(single_file.CONFIG_FOLDERS, "SD 1.x", models / "tiny")
    loader.load(str(checkpoint))
    ours = loader.generate(request(), Context())
    theirs = backend.generate(request(), Context())
    assert all(np.allclose(a.image, b.image, atol=1e-5) for a, b in zip(ours, theirs, strict=True))
    assert loader.model_info("").format == "safetensors"


def test_sd2_single_files_read_openclip_and_their_prediction_type(
    backend, models, tmp_path, monkeypatch
) -> None:
    """SD 2.x's text encoder is OpenCLIP's (other names, one in_proj for q, k and v); the
    prediction type comes from a config YAML beside the file where there is one."""
    from support.random_sd import save_single_file

    from sd_backends import single_file

    checkpoint = save_single_file(models / "tiny", tmp_path / "tiny-v2.safetensors", open_clip=True)
    monkeypatch.setitem(single_file.CONFIG_FOLDERS, "SD 2.x", models / "tiny")
    loader = DiffusionBackend()
    loader.model_library = _library(tmp_path, tmp_path / "h.json")
    assert [(m.name, m.architecture) for m in loader.models()] == [("tiny-v2", "SD 2.x")]
    loader.load(str(checkpoint))
    assert loader._pipeline.scheduler.config.prediction_type == "epsilon"  # its config's
    ours = loader.generate(request(), Context())
    theirs = backend.generate(request(), Context())
    assert all(np.allclose(a.image, b.image, atol=1e-5) for a, b in zip(ours, theirs, strict=True))

    checkpoint.with_suffix(".yaml").write_text('model:\n  params:\n    parameterization: "v"\n')
    loader.load(str(checkpoint))
    assert loader._pipeline.scheduler.config.prediction_type == "v_prediction"
    v = loader.generate(request(), Context())
    assert not np.allclose(v[0].image, ours[0].image, atol=1e-3)


def test_sd2_prediction_type_from_the_weights(tmp_path) -> None:
    from safetensors.torch import save_file

    from sd_backends.architecture import V_PREDICTION_PROBE, sd2_prediction_type

    for spread, expected in ((0.2, "v_prediction"), (0.02, "epsilon")):
        path = tmp_path / f"{spread}.safetensors"
        bias = torch.randn(640, generator=torch.Generator().manual_seed(0))
        save_file({V_PREDICTION_PROBE: bias * spread / bias.std(unbiased=False)}, str(path))
        assert sd2_prediction_type(path, "no probe") == expected
    save_file({"other": torch.zeros(1)}, str(tmp_path / "none.safetensors"))
    assert sd2_prediction_type(tmp_path / "none.safetensors", "no probe") == "no probe"
    (tmp_path / "none.yaml").write_text("model:\n  params:\n    linear_start: 0.00085\n")
    assert sd2_prediction_type(tmp_path / "none.safetensors", "v_prediction") == "epsilon"


def test_sdxl_single_files_load_both_text_encoders(tmp_path, monkeypatch) -> None:
    from support.random_sd import build_random_sdxl, save_single_file

    from sd_backends import single_file

    folder = build_random_sdxl(tmp_path / "models" / "tiny-xl")
    (tmp_path / "files").mkdir()
    checkpoint = save_single_file(folder, tmp_path / "files" / "tiny-xl-turbo.safetensors")
    monkeypatch.setitem(single_file.CONFIG_FOLDERS, "SDXL", folder)
    from_file, from_folder = DiffusionBackend(), DiffusionBackend()
    from_file.model_library = _library(tmp_path / "files", tmp_path / "h.json")
    from_folder.model_library = _library(tmp_path / "models", tmp_path / "h.json")
    assert [(m.name, m.architecture) for m in from_file.models()] == [("tiny-xl-turbo", "SDXL")]
    from_file.load(str(checkpoint))
    from_folder.load("tiny-xl")
    assert type(from_file._pipeline).__name__ == "StableDiffusionXLPipeline"
    ours = from_file.generate(request(negative_prompt="blurry"), Context())
    theirs = from_folder.generate(request(negative_prompt="blurry"), Context())
    assert all(np.allclose(a.image, b.image, atol=1e-5) for a, b in zip(ours, theirs, strict=True))


def test_distilled_models_get_a_few_step_hint(tmp_path) -> None:
    import json

    from sd_backends.library import FEW_STEP_HINT, LCM_HINT, few_step_hint, hints
    from studio.core.model_files import identify

    lcm = build_random_sd(tmp_path / "dreamshaper-distilled", lcm=True)  # said by its UNet
    assert few_step_hint(identify(lcm)) == LCM_HINT
    plain = build_random_sd(tmp_path / "plain")
    assert few_step_hint(identify(plain)) == ""
    plain.rename(tmp_path / "tiny-Lightning-4step")
    lightning = identify(tmp_path / "tiny-Lightning-4step")
    assert few_step_hint(lightning) == FEW_STEP_HINT
    assert hints(lightning) == FEW_STEP_HINT  # an unknown architecture: no native size
    xl = tmp_path / "sdxl-Lightning-4step"  # a diffusers folder that says it is SDXL
    xl.mkdir()
    (xl / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionXLPipeline"}))
    assert hints(identify(xl)) == f"made for 1024 x 1024; {FEW_STEP_HINT}"


def test_the_manifest_declares_what_each_backend_loads() -> None:
    """Studio picks the backend for a model by the formats in the manifest, without
    importing the backend: they must be the formats its code loads."""
    import tomllib
    from importlib.metadata import entry_points
    from importlib.resources import files

    from studio.core.registry import GROUP, MANIFEST, PluginRegistry

    manifest = tomllib.loads((files("sd_backends") / MANIFEST).read_text(encoding="utf-8"))
    points = {p.name: p for p in entry_points(group=GROUP) if p.module.startswith("sd_backends.")}
    assert set(manifest["backends"]) == set(points) == {"diffusion", "diffusion-onnx"}
    registry = PluginRegistry()
    for name, point in points.items():
        declared = tuple(manifest["backends"][name]["formats"])
        assert declared == tuple(point.load().formats) == registry.record(name).formats, name


# Parameter counts of the released models' parts (UNet, VAE, text encoders): the shipped
# configurations build exactly these architectures.
RELEASED = {
    "SD 1.x": {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480},
    "SD 2.x": {"unet": 865_910_724, "vae": 83_653_863, "text_encoder": 340_387_840},
    "SDXL": {
        "unet": 2_567_463_684,
        "vae": 83_653_863,
        "text_encoder": 123_060_480,
        "text_encoder_2": 694_659_840,
    },
}


@pytest.mark.parametrize("architecture", RELEASED)
def test_shipped_configurations_build_the_released_architectures(architecture) -> None:
    import json

    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from sd_backends.single_file import CONFIG_FOLDERS

    folder = CONFIG_FOLDERS[architecture]
    assert (folder / "model_index.json").is_file()
    assert (folder / "scheduler" / "scheduler_config.json").is_file()
    builders = {
        "unet": UNet2DConditionModel.from_config,
        "vae": AutoencoderKL.from_config,
        "text_encoder": CLIPTextModel,
        "text_encoder_2": CLIPTextModelWithProjection,
    }
    for part, expected in RELEASED[architecture].items():
        if part.startswith("text_encoder"):
            config = CLIPTextConfig.from_pretrained(folder / part)
        else:
            config = json.loads((folder / part / "config.json").read_text())
        with init_empty_weights():  # shapes only, no memory
            model = builders[part](config)
        assert sum(p.numel() for p in model.parameters()) == expected, part


def test_the_shipped_tokenizer_is_clips() -> None:
    """OpenAI's tokenizer's ids; OpenCLIP's encoders (SD 2.x, SDXL's second) pad with "!"."""
    from transformers import CLIPTokenizer

    from sd_backends.single_file import CLIP_TOKENIZER, _tokenizers

    tokenizer = CLIPTokenizer.from_pretrained(CLIP_TOKENIZER)
    assert tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert len(tokenizer) == 49408 and tokenizer.pad_token_id == 49407
    xl = _tokenizers(CLIP_TOKENIZER.parent / "sdxl", "SDXL")
    assert (xl["tokenizer"].pad_token_id, xl["tokenizer_2"].pad_token_id) == (49407, 0)
    assert _tokenizers(CLIP_TOKENIZER.parent / "sd2", "SD 2.x")["tokenizer"].pad_token_id == 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_runs_fp16_with_the_same_seeds(models, tmp_path) -> None:
    gpu = DiffusionBackend()
    gpu.model_library = lambda: ModelLibrary([models], [], tmp_path / "h.json")
    gpu.load("tiny")
    assert gpu.device() == "cuda" and gpu._pipeline.unet.dtype == torch.float16
    first, again = gpu.generate(request(), Context()), gpu.generate(request(), Context())
    assert all(np.array_equal(a.image, b.image) for a, b in zip(first, again, strict=True))
    assert all(np.isfinite(c.image).all() for c in first)


def test_sdxl_folders_generate_with_the_same_seed_rules(tmp_path) -> None:
    from support.random_sd import build_random_sdxl

    folder = build_random_sdxl(tmp_path / "models" / "tiny-xl")
    xl = DiffusionBackend()
    xl.model_library = lambda: ModelLibrary([tmp_path / "models"], [], tmp_path / "h.json")
    (listed,) = xl.models()
    assert (listed.name, listed.architecture) == ("tiny-xl", "SDXL")
    xl.load("tiny-xl")
    assert type(xl._pipeline).__name__ == "StableDiffusionXLPipeline"
    ctx = Context()
    batch = xl.generate(request(negative_prompt="blurry"), ctx)
    alone = xl.generate(request(seed=6, count=1, candidates=1, negative_prompt="blurry"), Context())
    assert batch[0].image.shape == (64, 64, 3) and len(ctx.previews) == 6  # 3 steps each
    assert np.array_equal(alone[0].image, batch[1].image)
    assert folder.is_dir()
