"""Stable-Diffusion models exported to ONNX, run with ONNX Runtime and numpy only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from contexts import Context, onnx_device
from support.random_sd import build_random_sd
from test_diffusion import request

from sd_backends.architecture import SD2, SDXL, architecture
from sd_backends.backend import DiffusionBackend, load_diffusers_folder
from sd_backends.export_onnx import export
from sd_backends.onnx_backend import DiffusionOnnxBackend
from studio.api import Cancelled, ModelLibrary
from studio.core.model_files import identify

ROOT = Path(__file__).resolve().parents[2]
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    build_random_sd(folder / "tiny")
    export(load_diffusers_folder(folder / "tiny", torch.float32), folder / "tiny-onnx")
    build_random_sd(folder / "tiny-v")  # SD 2.x's 768 models predict v, not the noise
    config = folder / "tiny-v" / "scheduler" / "scheduler_config.json"
    config.write_text(
        json.dumps(json.loads(config.read_text()) | {"prediction_type": "v_prediction"})
    )
    export(load_diffusers_folder(folder / "tiny-v", torch.float32), folder / "tiny-v-onnx")
    build_random_sd(folder / "tiny-lcm", lcm=True)
    export(load_diffusers_folder(folder / "tiny-lcm", torch.float32), folder / "tiny-lcm-onnx")
    cache = tmp_path_factory.mktemp("cache") / "hashes.json"
    return lambda: ModelLibrary([folder], [], cache)


@pytest.fixture(scope="module")
def backends(library):
    torch_backend, onnx_backend = DiffusionBackend(), DiffusionOnnxBackend(threads=1)
    for backend, model in ((torch_backend, "tiny"), (onnx_backend, "tiny-onnx")):
        backend.model_library = library
        backend.load(model)
    return torch_backend, onnx_backend


def test_export_is_an_onnx_folder_the_library_lists(library, backends) -> None:
    listed = backends[1].models()
    assert [m.name for m in listed] == ["tiny-lcm-onnx", "tiny-onnx", "tiny-v-onnx"]
    listed = listed[1]
    assert identify(Path(listed.ref)).format == "onnx"
    assert backends[1].device() == onnx_device(backends[1]._runtime.sessions.values(), "cuda")


@pytest.mark.parametrize("sampler", ["Euler", "DDIM", "DPM++ 2M Karras"])
@pytest.mark.parametrize("guidance", [5.0, 1.0])
def test_same_images_as_the_pytorch_backend(backends, sampler, guidance) -> None:
    r = request(options={"sampler": sampler}, guidance=guidance, negative_prompt="blurry")
    ours = backends[1].generate(r, Context())
    theirs = backends[0].generate(r, Context())
    for a, b in zip(ours, theirs, strict=True):
        assert a.seed == b.seed
        assert np.abs(a.image - b.image).max() < 2e-3


@pytest.mark.parametrize("sampler", ["Euler", "DDIM", "DPM++ 2M Karras"])
def test_v_prediction_models_make_the_same_images(library, sampler) -> None:
    torch_backend, onnx_backend = DiffusionBackend(), DiffusionOnnxBackend(threads=1)
    for backend, model in ((torch_backend, "tiny-v"), (onnx_backend, "tiny-v-onnx")):
        backend.model_library = library
        backend.load(model)
    assert torch_backend._pipeline.scheduler.config.prediction_type == "v_prediction"
    r = request(options={"sampler": sampler}, negative_prompt="blurry")
    ours, theirs = onnx_backend.generate(r, Context()), torch_backend.generate(r, Context())
    assert all(np.abs(a.image - b.image).max() < 2e-3 for a, b in zip(ours, theirs, strict=True))


@pytest.mark.parametrize("model", ["tiny", "tiny-lcm"])  # guided by two passes, or an input
def test_lcm_sampling_matches_in_one_step_and_repeats_in_more(library, model) -> None:
    """One step adds no noise, so both backends make the same image; more steps noise the
    prediction again (torch's noise in one, numpy's in the other), the same each time."""
    torch_backend, onnx_backend = DiffusionBackend(), DiffusionOnnxBackend(threads=1)
    for backend, name in ((torch_backend, model), (onnx_backend, model + "-onnx")):
        backend.model_library = library
        backend.load(name)
    one = request(options={"sampler": "LCM"}, steps=1, guidance=2.0)
    ours, theirs = onnx_backend.generate(one, Context()), torch_backend.generate(one, Context())
    assert all(np.abs(a.image - b.image).max() < 2e-3 for a, b in zip(ours, theirs, strict=True))
    four = request(options={"sampler": "LCM"}, steps=4, guidance=2.0)
    first, again = onnx_backend.generate(four, Context()), onnx_backend.generate(four, Context())
    assert all(np.array_equal(a.image, b.image) for a, b in zip(first, again, strict=True))
    assert not np.allclose(first[0].image, ours[0].image, atol=1e-3)
    other = onnx_backend.generate(
        request(options={"sampler": "LCM"}, steps=1, guidance=4.0), Context()
    )
    assert not np.allclose(other[0].image, ours[0].image, atol=1e-4)  # guidance reaches it


@pytest.mark.parametrize("negative", ["", "blurry"])  # SDXL guides an empty one by zeros
@pytest.mark.parametrize("guidance", [5.0, 1.0])
def test_sdxl_exports_and_makes_the_same_images(tmp_path, negative, guidance) -> None:
    from support.random_sd import build_random_sdxl

    folder = build_random_sdxl(tmp_path / "tiny-xl")
    export(load_diffusers_folder(folder, torch.float32), tmp_path / "tiny-xl-onnx", "SDXL")
    assert architecture(identify(tmp_path / "tiny-xl-onnx")) == SDXL
    library = lambda: ModelLibrary([tmp_path], [], tmp_path / "h.json")  # noqa: E731
    torch_backend, onnx_backend = DiffusionBackend(), DiffusionOnnxBackend(threads=1)
    for backend, model in ((torch_backend, "tiny-xl"), (onnx_backend, "tiny-xl-onnx")):
        backend.model_library = library
        backend.load(model)
    r = request(negative_prompt=negative, guidance=guidance, options={"sampler": "DDIM"})
    ours, theirs = onnx_backend.generate(r, Context()), torch_backend.generate(r, Context())
    assert all(np.abs(a.image - b.image).max() < 2e-3 for a, b in zip(ours, theirs, strict=True))


def test_ancestral_sampling_is_deterministic_and_cancel_stops(backends) -> None:
    r = request(options={"sampler": "Euler a"})
    first, again = backends[1].generate(r, Context()), backends[1].generate(r, Context())
    assert all(np.array_equal(a.image, b.image) for a, b in zip(first, again, strict=True))
    ctx = Context(cancel_at=2)
    with pytest.raises(Cancelled):
        backends[1].generate(request(steps=6), ctx)
    assert ctx.steps[-1] == (2, 6) and len(ctx.previews) == 1  # stopped at step 2


def test_the_onnx_backend_never_imports_torch(library, tmp_path) -> None:
    folder = library().folders[0] / "tiny-onnx"
    script = f"""
import sys
from pathlib import Path
from sd_backends.onnx_backend import DiffusionOnnxBackend
from studio.api import GenerationRequest, ModelLibrary
backend = DiffusionOnnxBackend(threads=1)
backend.model_library = lambda: ModelLibrary([], [], Path({str(tmp_path / "h.json")!r}))
backend.load({str(folder)!r})
class Ctx:
    cancelled = False
    device = "cpu"
    def check_cancelled(self): pass
    def progress(self, step, total, phase="steps"): pass
    def preview(self, image): pass
request = GenerationRequest("a red cat", backend="diffusion-onnx", seed=1, count=1,
                            candidates=1, steps=2, guidance=3.0)
(image,) = backend.generate(request, Ctx())
assert image.image.shape == (64, 64, 3)
assert "torch" not in sys.modules, "torch was imported"
print("ok")
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.stdout.strip() == "ok", done.stderr


def test_export_command(library, tmp_path, monkeypatch, capsys) -> None:
    from studio.api import EXIT_OK, EXIT_USAGE
    from studio.cli import main

    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))
    tiny = library().folders[0] / "tiny"
    out = tmp_path / "exported"
    assert main(["sd-export-onnx", str(tiny), str(out), "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out) == {"written": str(out)}
    assert identify(out).format == "onnx"
    assert main(["sd-export-onnx", str(tiny), str(out)]) == EXIT_USAGE
    assert "not overwritten" in capsys.readouterr().err
    assert main(["sd-export-onnx", str(out), str(tmp_path / "again")]) == EXIT_USAGE
    assert "is onnx: a diffusers folder or a single file exports" in capsys.readouterr().err
    # a single file exports too (the tiny model's configuration standing in for SD 2.x's)
    from support.random_sd import save_single_file

    from sd_backends import single_file

    monkeypatch.setitem(single_file.CONFIG_FOLDERS, "SD 2.x", tiny)
    checkpoint = save_single_file(tiny, tmp_path / "tiny-v2.safetensors", open_clip=True)
    from_file = tmp_path / "from-file"
    assert main(["sd-export-onnx", str(checkpoint), str(from_file)]) == EXIT_OK
    assert architecture(identify(from_file)) == SD2


def test_scheduler_settings_the_numpy_loop_lacks_are_refused() -> None:
    import numpy as np

    from sd_backends.numpy_schedulers import Sampler

    config = {
        "beta_schedule": "scaled_linear",
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "use_karras_sigmas": True,
    }
    noise = np.zeros((1, 4, 4, 4), np.float32)
    with pytest.raises(ValueError, match="use_karras_sigmas"):  # Euler would ignore them
        Sampler("Euler", config, 3).run(noise, lambda x, t: x, None, lambda i, x: None)
    done = Sampler("DPM++ 2M Karras", config, 3).run(
        noise, lambda x, t: np.zeros_like(x), None, lambda i, x: None
    )
    assert done.shape == noise.shape


def test_folders_missing_a_part_are_refused_on_load(tmp_path) -> None:
    """The core takes any folder of valid graphs as ONNX; this backend says which of its
    parts one lacks."""
    import onnx
    from onnx import TensorProto, helper

    from studio.api import ModelFileError

    folder = tmp_path / "partial"
    (folder / "scheduler").mkdir(parents=True)
    (folder / "model_index.json").write_text("{}")
    (folder / "scheduler" / "scheduler_config.json").write_text("{}")
    x, y = (helper.make_tensor_value_info(n, TensorProto.FLOAT, [1]) for n in "xy")
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    for part in ("text_encoder", "vae_decoder"):
        (folder / part).mkdir()
        onnx.save(helper.make_model(graph), str(folder / part / "model.onnx"))
    backend = DiffusionOnnxBackend(threads=1)
    backend.model_library = lambda: ModelLibrary([], [], tmp_path / "h.json")
    assert identify(folder).format == "onnx"
    with pytest.raises(ModelFileError, match=r"partial lacks unet/model\.onnx"):
        backend.load(str(folder))
    (folder / "unet").mkdir()
    onnx.save(helper.make_model(graph), str(folder / "unet" / "model.onnx"))
    (folder / "text_encoder_2").mkdir()  # SDXL's second text encoder, without its graph
    with pytest.raises(ModelFileError, match=r"partial lacks text_encoder_2/model\.onnx"):
        backend.load(str(folder))


def test_large_latents_run_the_unet_row_by_row_to_the_same_images(backends, monkeypatch) -> None:
    """From `ROW_BY_ROW` latent positions (64 x 64, SD 1.5 at 512²) the UNet runs one row
    at a time, which halves its attention's memory when guided: the same images."""
    from sd_backends import onnx_backend

    r = request(options={"sampler": "Euler"}, negative_prompt="blurry")
    whole = backends[1].generate(r, Context())
    unet = backends[1]._runtime.sessions["unet"]
    batches = []

    def run(names, inputs):
        batches.append(len(inputs["sample"]))
        return type(unet).run(unet, names, inputs)

    monkeypatch.setattr(unet, "run", run)
    monkeypatch.setattr(onnx_backend, "ROW_BY_ROW", 1)
    by_row = backends[1].generate(r, Context())
    assert batches == [1] * (2 * r.count * r.steps)  # uncond and cond of each image
    for a, b in zip(whole, by_row, strict=True):
        assert np.abs(a.image - b.image).max() < 1e-5
