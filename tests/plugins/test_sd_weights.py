"""Weights read tensor by tensor (sd_backends.weights): the same tensors the safetensors
library reads, in the type the model computes in, bytes counted as they come; models
stored in a half type stay compact on the CPU (bfloat16 where it computes in it)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from contexts import Context
from safetensors.torch import load_file, save_file
from support.random_sd import build_random_sd, save_single_file

from sd_backends import weights
from sd_backends.backend import DiffusionBackend
from sd_backends.weights import WeightReader, compute_dtype
from studio.api import GenerationRequest, ModelFileError, ModelLibrary
from studio.core.model_files import identify

torch.set_num_threads(1)


def mixed_tensors() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "a.f32": torch.randn(3, 5, generator=generator),
        "b.f16": torch.randn(7, generator=generator).half(),
        "c.bf16": torch.randn(2, 2, 2, generator=generator).bfloat16(),
        "d.i64": torch.arange(6).reshape(2, 3),
        "e.bool": torch.tensor([True, False, True]),
        "f.u8": torch.arange(4, dtype=torch.uint8),
        "g.scalar": torch.tensor(2.5),
        "h.empty": torch.zeros(0, 4),
    }


def test_the_reader_reads_what_safetensors_reads_in_the_models_type(tmp_path) -> None:
    path = tmp_path / "mixed.safetensors"
    save_file(mixed_tensors(), str(path))
    reports: list[tuple[int, int]] = []
    total = sum(t.numel() * t.element_size() for t in mixed_tensors().values())
    reader = WeightReader(torch.bfloat16, total, lambda done, all_: reports.append((done, all_)))
    read = reader.read(path)
    expected = load_file(str(path))
    assert read.keys() == expected.keys()
    for name, tensor in expected.items():
        want = tensor.to(torch.bfloat16) if tensor.is_floating_point() else tensor
        assert read[name].dtype == want.dtype and read[name].shape == want.shape, name
        assert torch.equal(read[name], want), name
    done = [d for d, _ in reports]
    assert done == sorted(done) and done[-1] == total and {t for _, t in reports} == {total}


def test_a_file_cut_short_is_refused_with_its_name(tmp_path) -> None:
    path = tmp_path / "cut.safetensors"
    save_file(mixed_tensors(), str(path))
    data = path.read_bytes()
    path.write_bytes(data[:-9])
    with pytest.raises(ModelFileError, match=r"cut\.safetensors is cut short"):
        WeightReader(torch.float32, len(data)).read(path)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """A tiny model as an fp32 folder, and fp16 copies: a folder and a single file."""
    root = tmp_path_factory.mktemp("weights")
    fp32 = build_random_sd(root / "fp32" / "tiny", seed=3)
    half = root / "half"
    shutil.copytree(fp32, half / "tiny-fp16-folder")
    for file in (half / "tiny-fp16-folder").rglob("*.safetensors"):
        save_file({k: v.half() for k, v in load_file(str(file)).items()}, str(file))
    single = save_single_file(fp32, root / "single.safetensors")
    save_file(
        {k: v.half() for k, v in load_file(str(single)).items()},
        str(half / "tiny-fp16.safetensors"),
    )
    return root


def backend_for(folder: Path, tmp_path: Path) -> DiffusionBackend:
    backend = DiffusionBackend()
    backend.model_library = lambda: ModelLibrary([folder], [], tmp_path / "hashes.json")
    return backend


def request() -> GenerationRequest:
    return GenerationRequest("a red house", seed=5, steps=3, width=64, height=64)


def test_half_models_run_in_bfloat16_on_a_cpu_that_computes_in_it(
    models, tmp_path, monkeypatch
) -> None:
    from sd_backends import single_file

    monkeypatch.setitem(single_file.CONFIG_FOLDERS, "SD 1.x", models / "fp32" / "tiny")
    reference = backend_for(models / "fp32", tmp_path)
    reference.load("tiny")
    assert reference._pipeline.unet.dtype == torch.float32  # stored in fp32: kept
    expected = np.asarray(reference.generate(request(), Context())[0].image, dtype=float)
    for bf16, dtype in ((True, torch.bfloat16), (False, torch.float32)):
        monkeypatch.setattr(weights, "cpu_computes_bf16", lambda bf16=bf16: bf16)
        for name in ("tiny-fp16-folder", "tiny-fp16"):
            backend = backend_for(models / "half", tmp_path)
            backend.load(name)
            parts = (backend._pipeline.unet, backend._pipeline.vae, backend._pipeline.text_encoder)
            assert {p.dtype for p in parts} == {dtype}, name
            image = np.asarray(backend.generate(request(), Context())[0].image, dtype=float)
            # the same model in a coarser type: near the fp32 image (pixels in 0..1)
            assert np.isfinite(image).all() and np.abs(image - expected).mean() < 0.01


def test_loading_counts_the_bytes_of_the_weights(models, tmp_path) -> None:
    backend = backend_for(models / "half", tmp_path)
    reports: list[tuple[int, int]] = []
    backend.loading_progress = lambda done, total: reports.append((done, total))
    backend.load("tiny-fp16-folder")
    folder = models / "half" / "tiny-fp16-folder"
    total = sum(f.stat().st_size for f in folder.rglob("*.safetensors"))
    assert reports[-1] == (total, total) and {t for _, t in reports} == {total}
    assert [d for d, _ in reports] == sorted(d for d, _ in reports) and len(reports) > 10


def test_the_type_follows_the_stored_weights_and_the_device(models) -> None:
    half = identify(models / "half" / "tiny-fp16.safetensors")
    full = identify(models / "fp32" / "tiny")
    assert compute_dtype(half, "cuda") == torch.float16
    assert compute_dtype(full, "cpu") == torch.float32
    expected = torch.bfloat16 if weights.cpu_computes_bf16() else torch.float32
    assert compute_dtype(half, "cpu") == expected
