"""The ONNX export and the ONNX Runtime backend agree with PyTorch and never import torch."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from contexts import onnx_device

from shapes_backend.model.bundle import RANKER, TRANSFORMER, BundleError
from shapes_backend.model.common import SamplingOptions
from shapes_backend.model.onnx_pipeline import (
    CPU,
    PREFIX,
    STEP,
    KVCache,
    OnnxShapesPipeline,
    model_metadata,
)
from shapes_backend.model.pipeline import ShapesPipeline
from shapes_backend.model.text_tokens import PAD
from shapes_backend.onnx_backend import ShapesOnnxBackend
from shapes_lab.model.export_onnx import export
from studio.api import Cancelled, GenerationRequest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def exported(micro_bundle, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("onnx") / "bundle"
    shutil.copytree(micro_bundle, folder)
    export(folder)
    return folder


def test_graphs_hold_no_copy_of_the_weights(exported) -> None:
    weights = (exported / TRANSFORMER).stat().st_size
    for name in (PREFIX, STEP):
        assert (exported / name).stat().st_size < weights / 4


def test_onnx_logits_match_pytorch(exported) -> None:
    onnx = OnnxShapesPipeline(exported, prefer_cuda=False)
    assert onnx.provider == CPU
    model = ShapesPipeline.load(exported).transformer
    ids = onnx.tokenizers.text.encode("a pink diamond to the left of an orange star").ids
    prompts = onnx.w["text_embed.weight"][np.stack([ids, np.full_like(ids, PAD)])]
    h, prompt_cache = onnx._run(PREFIX, {"x": prompts})  # once per group of rows
    rows = np.repeat(prompts, 2, axis=0)  # the prompt twice, then the empty prompt twice
    c = model.config
    cache = KVCache(prompt_cache, len(rows), c.n_patches)
    with torch.no_grad():
        expected, past = model.run(torch.from_numpy(rows), 0)
    torch_background = model.background_head(expected[:, -1]).detach().numpy()
    onnx_background = np.repeat(onnx._heads("background_head", h), 2, axis=0)
    assert np.abs(onnx_background - torch_background).max() < 1e-4
    step_x = onnx.w["background_embed.weight"][[0, 2, 1, 0]][:, None]
    kinds = [9, 12, 10, 11]
    for step in range(3):  # the cache's buffers fill up step by step, as in sampling
        position = np.array([c.text_length + step], np.int64)
        h, new = onnx._run(STEP, {"x": step_x, "position": position, **cache.inputs()})
        cache.append(new)
        with torch.no_grad():
            hidden, past = model.run(torch.from_numpy(step_x), c.text_length + step, past)
            torch_kind = model.kind_head(hidden[:, -1]).numpy()
            torch_code = model.code_logits(hidden[:, -1], torch.tensor(kinds)).numpy()
        assert np.abs(onnx._heads("kind_head", h) - torch_kind).max() < 1e-4
        code = onnx._heads("code_head", h + onnx.w["code_condition.weight"][kinds])
        assert np.abs(code - torch_code).max() < 1e-4
        step_x = onnx.w["kind_embed.weight"][kinds] + onnx.w["code_embed.weight"][[3, 7, 1, 0]]
        step_x = step_x[:, None]


def test_both_runtimes_draw_the_same_tokens_with_the_same_likelihoods(exported) -> None:
    greedy, prompt = SamplingOptions(temperature=0.0), "a red star and a blue circle"
    onnx = OnnxShapesPipeline(exported, prefer_cuda=False).generate(prompt, 2, 0, greedy)
    torch_ = ShapesPipeline.load(exported).generate(prompt, 2, 0, greedy)
    assert np.array_equal(onnx.images, torch_.images)
    assert np.abs(onnx.log_likelihoods - torch_.log_likelihoods).max() < 1e-3
    assert np.abs(onnx.scores - torch_.scores).max() < 1e-4


class Context:
    def __init__(self, cancel_at: int | None = None) -> None:
        self.steps: list[int] = []
        self.previews = 0
        self.cancel_at = cancel_at

    cancelled = False
    device = "cpu"

    def check_cancelled(self) -> None:
        pass

    def progress(self, step: int, total: int) -> None:
        self.steps.append(step)
        if self.cancel_at is not None and step >= self.cancel_at:
            raise Cancelled

    def preview(self, image) -> None:
        self.previews += 1


def test_onnx_backend_generates_ranked_deterministic_images(exported) -> None:
    backend = ShapesOnnxBackend(exported)
    backend.load("")
    assert backend.device() == onnx_device(backend.pipeline.sessions.values(), "cuda:0")
    request = GenerationRequest("two blue stars", seed=3, count=2, candidates=6)
    first, again = backend.generate(request, Context()), backend.generate(request, Context())
    assert len(first) == 6
    assert all(np.array_equal(a.image, b.image) for a, b in zip(first, again, strict=True))
    assert [c.score for c in first] == sorted((c.score for c in first), reverse=True)
    ctx = Context(cancel_at=5)
    with pytest.raises(Cancelled):
        backend.generate(request, ctx)
    assert ctx.steps[-1] == 5


def test_graphs_from_other_weights_are_refused(exported, tmp_path) -> None:
    folder = tmp_path / "bundle"
    shutil.copytree(exported, folder)
    weights = bytearray((folder / TRANSFORMER).read_bytes())
    weights[-1] ^= 0xFF
    (folder / TRANSFORMER).write_bytes(bytes(weights))
    with pytest.raises(BundleError, match="exported from other weights"):
        OnnxShapesPipeline(folder)


def test_graphs_over_shorter_weights_are_refused_before_onnx_runtime_reads_them(
    exported, tmp_path
) -> None:
    """Only the ranker's graphs read ranker.safetensors: ONNX Runtime would fail on it
    with an out-of-bounds initializer if the check came after the session."""
    folder = tmp_path / "bundle"
    shutil.copytree(exported, folder)
    weights = (folder / RANKER).read_bytes()
    (folder / RANKER).write_bytes(weights[: len(weights) // 2])
    with pytest.raises(BundleError, match=r"ranker-text\.onnx was exported from other weights"):
        OnnxShapesPipeline(folder)


def test_metadata_is_read_as_the_onnx_package_reads_it(exported) -> None:
    import onnx

    for path in sorted(exported.glob("*.onnx")):
        model = onnx.load(str(path), load_external_data=False)
        expected = {p.key: p.value for p in model.metadata_props}
        assert "weights_sha256" in expected
        assert model_metadata(path.read_bytes()) == expected
    with_two = onnx.load(str(exported / STEP), load_external_data=False)
    with_two.metadata_props.add(key="other", value="é")
    assert model_metadata(with_two.SerializeToString())["other"] == "é"


@pytest.mark.parametrize("data", [b"\x0a", b"\x0a\x05abc", b"\x08\x80", b"\x0b"])
def test_what_is_not_a_model_is_refused(data, exported, tmp_path) -> None:
    with pytest.raises(ValueError, match="not an ONNX model"):
        model_metadata(data)
    folder = tmp_path / "bundle"
    shutil.copytree(exported, folder)
    (folder / STEP).write_bytes(data)
    with pytest.raises(BundleError, match=re.escape(f"cannot read {STEP}")):
        OnnxShapesPipeline(folder)


def test_the_onnx_path_never_imports_torch_nor_onnx(exported) -> None:
    code = f"""
import sys, json
from pathlib import Path
from shapes_backend.onnx_backend import ShapesOnnxBackend
from studio.api import GenerationRequest
backend = ShapesOnnxBackend(Path({str(exported)!r}))
backend.load("")
class Ctx:
    cancelled = False
    device = "cpu"
    def check_cancelled(self): pass
    def progress(self, step, total): pass
    def preview(self, image): pass
images = backend.generate(GenerationRequest("a red circle", seed=1, count=1), Ctx())
heavy = {{"onnx", "torch", "transformers", "diffusers"}}
print(json.dumps({{"heavy": sorted(m for m in sys.modules if m.split(".")[0] in heavy),
                  "images": len(images)}}))
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {"heavy": [], "images": 1}
