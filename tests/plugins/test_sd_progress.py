"""The SD backends report decoding as its own phase (tile by tile when tiled), and
`studio sd-export-onnx` says what it exports, part by part, without tracer noise."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from contexts import Context
from support.random_sd import build_random_sd
from test_diffusion import request

from sd_backends.backend import DiffusionBackend
from sd_backends.decode_progress import decoder_runs
from sd_backends.onnx_backend import DiffusionOnnxBackend
from studio.api import DECODING, STEPS, ModelLibrary

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    build_random_sd(folder / "tiny")
    return folder


@pytest.fixture(scope="module")
def library(models, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache") / "hashes.json"
    return lambda: ModelLibrary([models], [], cache)


@pytest.fixture(scope="module")
def exported(models, tmp_path_factory) -> subprocess.CompletedProcess:
    """`studio sd-export-onnx` run as a user runs it, its stderr piped."""
    command = [sys.executable, "-m", "studio", "sd-export-onnx", str(models / "tiny")]
    command += [str(models / "tiny-onnx"), "--data-dir", str(tmp_path_factory.mktemp("home"))]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_export_says_each_part_and_no_warnings(exported) -> None:
    assert exported.returncode == 0, exported.stderr
    lines = exported.stderr.splitlines()
    assert lines[0] == "loading tiny…"
    parts = ["the text encoder", "the UNet", "the VAE decoder", "the VAE encoder"]
    starts = [f"exporting {part} ({i} of 4)…" for i, part in enumerate(parts, 1)]
    assert [line for line in lines if line.startswith("exporting")] == starts
    ends = [line for line in lines if line.startswith("exported")]
    assert [line.split(":")[0] for line in ends] == [f"exported {s[10:-1]}" for s in starts]
    assert all(re.search(r": [\d.]+ (kB|MB) in [\d.]+ s$", line) for line in ends)
    loading = [line for line in lines if line.startswith("loading tiny: ")]
    done, total = loading[-1].removeprefix("loading tiny: ").split(" of ")
    assert done == total  # the last says all of it was read
    assert 1 <= len(loading) <= 4 and all(line.endswith(" MB") for line in loading)
    # nothing else: no tracer or exporter warnings
    assert len(lines) == 1 + len(loading) + 2 * len(parts)
    assert "Warning" not in exported.stderr


def test_pytorch_decodes_after_each_images_steps(library) -> None:
    backend = DiffusionBackend()
    backend.model_library = library
    backend.load("tiny")
    ctx = Context()
    backend.generate(request(count=2, steps=2), ctx)
    decoded = [(DECODING, 0, 1), (DECODING, 1, 1)]  # one image at a time, each decoded
    first, second = [(STEPS, 1, 4), (STEPS, 2, 4)], [(STEPS, 3, 4), (STEPS, 4, 4)]
    assert ctx.phases == [*first, *decoded, *second, *decoded]

    tiled = Context()
    vae = backend._pipeline.vae
    before = (dict(vae.decoder._forward_hooks), dict(vae.decoder._forward_pre_hooks))
    backend.generate(request(count=1, steps=1, options={"vae_tiling": True}), tiled)
    runs = decoder_runs(vae, 32, 32)  # 64 x 64 pixels: 32 x 32 latents in 16-wide tiles
    assert runs == 9
    assert tiled.phases[1:] == [(DECODING, tile, runs) for tile in range(runs + 1)]
    hooks = (dict(vae.decoder._forward_hooks), dict(vae.decoder._forward_pre_hooks))
    assert hooks == before  # the counting hooks removed, the backend's own kept


def test_onnx_reports_decoding_after_the_steps(exported, library) -> None:
    backend = DiffusionOnnxBackend(threads=1)
    backend.model_library = library
    backend.load("tiny-onnx")
    ctx = Context()
    backend.generate(request(count=2, steps=2), ctx)
    assert ctx.phases == [(STEPS, 1, 2), (STEPS, 2, 2), (DECODING, 0, 1), (DECODING, 1, 1)]
