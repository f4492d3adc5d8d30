"""LoRAs on the PyTorch SD backend's pipelines (tiny random SD and SDXL models loaded by
the backend itself): the formats people have change the UNet and text encoders, the base
weights come back exactly, and a LoRA that does not fit a model is refused by its names
and shapes, leaving the model as it was."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from contexts import Context
from safetensors.numpy import save_file
from safetensors.torch import load_file
from safetensors.torch import save_file as save_torch
from support.random_loras import write_kohya, write_peft
from support.random_sd import build_random_sd, build_random_sdxl

from sd_backends import torch_loras
from sd_backends.backend import DiffusionBackend
from sd_backends.loras import (
    SD1,
    SD2,
    SDXL,
    UNKNOWN,
    is_lora,
    lora_family,
    merged_deltas,
    read_lora,
    resolve,
)
from sd_backends.torch_loras import LoraWeights
from studio.api import GenerationRequest, ModelFileError, ModelLibrary
from studio.core.model_files import identify

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """Both tiny models (each in its own library folder) and their LoRAs."""
    root = tmp_path_factory.mktemp("loras")
    build_random_sd(root / "sd" / "tiny-sd")
    build_random_sdxl(root / "sdxl" / "tiny-sdxl")
    for kind in ("sd", "sdxl"):
        model = root / kind / f"tiny-{kind}"
        write_kohya(model, root / f"{kind}-kohya.safetensors", conv=True)
        write_kohya(model, root / f"{kind}-other.safetensors", seed=1, rank=2, alpha=1.0)
        write_peft(model, root / f"{kind}-peft.safetensors", seed=2)
    model = root / "sdxl" / "tiny-sdxl"
    write_kohya(model, root / "sdxl-sgm.safetensors", sgm=True, conv=True, text=False)
    write_kohya(model, root / "sdxl-bf16.safetensors", sgm=True, dtype="bfloat16", text=False)
    return root


def _load(files: Path, kind: str, tmp_path_factory) -> DiffusionBackend:
    backend = DiffusionBackend()
    cache = tmp_path_factory.mktemp("cache") / "hashes.json"
    backend.model_library = lambda: ModelLibrary([files / kind], [], cache)
    backend.load("")
    return backend


@pytest.fixture(scope="module")
def sd(files, tmp_path_factory) -> DiffusionBackend:
    return _load(files, "sd", tmp_path_factory)


@pytest.fixture(scope="module")
def sdxl(files, tmp_path_factory) -> DiffusionBackend:
    return _load(files, "sdxl", tmp_path_factory)


def weights(pipeline) -> dict[str, torch.Tensor]:
    """A copy of every parameter of the parts a LoRA may change."""
    return {
        f"{part}.{name}": value.detach().clone()
        for part in ("unet", "text_encoder", "text_encoder_2")
        if getattr(pipeline, part, None) is not None
        for name, value in getattr(pipeline, part).named_parameters()
    }


def changed(pipeline, base: dict[str, torch.Tensor]) -> set[str]:
    now = weights(pipeline)
    return {name for name, value in now.items() if not torch.equal(value, base[name])}


@pytest.mark.parametrize(
    ("kind", "lora", "parts"),
    [
        ("sd", "sd-kohya", {"unet", "text_encoder"}),
        ("sd", "sd-peft", {"unet", "text_encoder"}),
        ("sdxl", "sdxl-kohya", {"unet", "text_encoder", "text_encoder_2"}),
        ("sdxl", "sdxl-peft", {"unet", "text_encoder", "text_encoder_2"}),
        ("sdxl", "sdxl-sgm", {"unet"}),  # kohya's SDXL files: the original UNet names
    ],
)
def test_lora_files_change_the_weights_they_name_and_none_else(
    request, files, kind, lora, parts
) -> None:
    pipeline = request.getfixturevalue(kind)._pipeline
    base = weights(pipeline)
    path = files / f"{lora}.safetensors"
    matched = resolve(read_lora(path), LoraWeights.targets(pipeline))
    loras = LoraWeights()
    loras.set(pipeline, [(identify(path), 1.0)])
    assert changed(pipeline, base) == set(matched)
    assert {name.split(".")[0] for name in matched} == parts
    loras.set(pipeline, [])
    assert changed(pipeline, base) == set()  # exactly the base weights again


def test_each_layer_adds_alpha_over_rank_times_up_down(files, sd) -> None:
    """A linear layer and a convolution (LoCon) against the factors as saved."""
    pipeline = sd._pipeline
    base = weights(pipeline)
    path = files / "sd-kohya.safetensors"
    tensors = load_file(path)
    loras = LoraWeights()
    loras.set(pipeline, [(path, 0.7)])
    after = weights(pipeline)
    loras.set(pipeline, [])
    for module in (
        "up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k",
        "down_blocks.0.resnets.0.conv1",
    ):
        name, layer = f"unet.{module}.weight", "lora_unet_" + module.replace(".", "_")
        down = tensors[f"{layer}.lora_down.weight"].float()
        up = tensors[f"{layer}.lora_up.weight"].float()
        scale = float(tensors[f"{layer}.alpha"]) / down.shape[0]
        expected = 0.7 * scale * (up.flatten(1) @ down.flatten(1)).reshape(base[name].shape)
        torch.testing.assert_close(after[name] - base[name], expected, rtol=1e-4, atol=1e-5)


def test_weight_zero_and_none_give_exactly_the_base_weights(files, sd) -> None:
    pipeline = sd._pipeline
    base = weights(pipeline)
    kohya, other = files / "sd-kohya.safetensors", files / "sd-other.safetensors"
    loras = LoraWeights()
    loras.set(pipeline, [(kohya, 0.0)])
    assert changed(pipeline, base) == set()
    loras.set(pipeline, [(other, 1.0)])
    alone = weights(pipeline)
    loras.set(pipeline, [(kohya, 1.0)])  # another set: the first one undone, not summed
    loras.set(pipeline, [(other, 1.0), (kohya, 0.0)])
    assert changed(pipeline, alone) == set()
    loras.set(pipeline, [])
    assert changed(pipeline, base) == set()


def test_weights_sum_and_two_at_half_differ_from_one_at_full(files, sd) -> None:
    pipeline = sd._pipeline
    kohya, peft = files / "sd-kohya.safetensors", files / "sd-peft.safetensors"
    loras = LoraWeights()
    loras.set(pipeline, [(kohya, 1.0)])
    full = weights(pipeline)
    loras.set(pipeline, [(kohya, 0.5), (kohya, 0.5)])
    halves = weights(pipeline)
    loras.set(pipeline, [(kohya, 0.5), (peft, 0.5)])
    mixed = weights(pipeline)
    loras.set(pipeline, [])
    assert all(torch.allclose(full[n], halves[n], atol=1e-6) for n in full)
    touched = [n for n in full if "attn2.to_k" in n]
    assert all(not torch.allclose(full[n], mixed[n]) for n in touched)


def test_the_same_set_is_not_read_again_but_a_replaced_file_is(files, sd, monkeypatch) -> None:
    pipeline = sd._pipeline
    path = files / "sd-swap.safetensors"
    write_kohya(files / "sd" / "tiny-sd", path, seed=3)
    reads = []
    real = torch_loras.read_lora
    monkeypatch.setattr(torch_loras, "read_lora", lambda p: reads.append(p) or real(p))
    loras = LoraWeights()
    loras.set(pipeline, [(path, 1.0)])
    first = weights(pipeline)
    loras.set(pipeline, [(identify(path), 1.0)])  # the same file, by its ModelFile
    assert len(reads) == 1
    write_kohya(files / "sd" / "tiny-sd", path, seed=4, rank=8)  # replaced: another size
    loras.set(pipeline, [(path, 1.0)])
    assert len(reads) == 2 and changed(pipeline, first)
    loras.set(pipeline, [])


def test_images_change_visibly_and_come_back_exactly(files, sd) -> None:
    fields = {"prompt": "a red cat", "backend": "diffusion", "seed": 5, "count": 1}
    request = GenerationRequest(**fields, candidates=1, steps=2, guidance=5.0)
    base = sd.generate(request, Context())[0].image
    loras = LoraWeights()
    loras.set(sd._pipeline, [(files / "sd-kohya.safetensors", 1.0)])
    styled = sd.generate(request, Context())[0].image
    loras.set(sd._pipeline, [])
    again = sd.generate(request, Context())[0].image
    assert np.abs(styled.astype(float) - base.astype(float)).mean() > 0.02
    assert np.array_equal(again, base)


@pytest.mark.parametrize(("kind", "lora"), [("sd", "sdxl-kohya"), ("sdxl", "sd-peft")])
def test_a_lora_for_the_other_family_is_refused_and_changes_nothing(
    request, files, kind, lora
) -> None:
    pipeline = request.getfixturevalue(kind)._pipeline
    own = files / f"{kind}-other.safetensors"
    loras = LoraWeights()
    loras.set(pipeline, [(own, 1.0)])
    before = weights(pipeline)
    with pytest.raises(ModelFileError, match=rf"{lora}\.safetensors does not fit this model: "):
        loras.set(pipeline, [(own, 1.0), (files / f"{lora}.safetensors", 1.0)])
    assert changed(pipeline, before) == set()  # still its own LoRA, nothing of the other
    loras.set(pipeline, [])


def test_the_refusal_counts_the_layers_and_names_one(files, sdxl) -> None:
    targets = LoraWeights.targets(sdxl._pipeline)
    lora = read_lora(files / "sdxl-kohya.safetensors")
    without_te2 = {n: s for n, s in targets.items() if not n.startswith("text_encoder_2.")}
    te2 = sum(layer.name.startswith("lora_te2_") for layer in lora.layers)
    match = rf"{te2} of its {len(lora.layers)} layers have no match \(e\.g\. lora_te2_"
    with pytest.raises(ModelFileError, match=match):
        resolve(lora, without_te2)
    name = "unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight"
    narrower = {**targets, name: (32, 64)}
    with pytest.raises(
        ModelFileError, match=r"1 of its \d+ layers have another shape .*\[32, 80\]"
    ):
        resolve(lora, narrower)


def test_bfloat16_files_read_as_their_float32_values(files, sdxl) -> None:
    targets = LoraWeights.targets(sdxl._pipeline)
    bf16 = merged_deltas([(read_lora(files / "sdxl-bf16.safetensors"), 1.0)], targets)
    tensors = load_file(files / "sdxl-bf16.safetensors")
    layer = "lora_unet_middle_block_1_transformer_blocks_0_attn1_to_q"
    down, up = (tensors[f"{layer}.lora_{r}.weight"].float() for r in ("down", "up"))
    expected = (up @ down).numpy() * float(tensors[f"{layer}.alpha"]) / down.shape[0]
    name = "unet.mid_block.attentions.0.transformer_blocks.0.attn1.to_q.weight"
    np.testing.assert_allclose(bf16[name], expected, rtol=1e-5, atol=1e-6)


def test_older_diffusers_names_give_the_same_deltas(files, tmp_path, sd) -> None:
    """Attention processors' `to_q_lora.down` and `lora_linear_layer`/`lora.down`."""
    targets = LoraWeights.targets(sd._pipeline)
    peft = load_file(files / "sd-peft.safetensors")
    older = {}
    for name, value in peft.items():
        role = "down" if name.endswith("lora_A.weight") else "up"
        module = name.rsplit(".", 2)[0]
        layer, _, last = module.rpartition(".")
        if last in ("to_q", "to_k", "to_v"):
            older[f"{layer}.processor.{last}_lora.{role}.weight"] = value
        elif module.endswith(".to_out.0"):
            older[f"{module.removesuffix('.to_out.0')}.processor.to_out_lora.{role}.weight"] = value
        elif module.startswith("text_encoder."):
            older[f"{module}.lora_linear_layer.{role}.weight"] = value
        else:
            older[f"{module}.lora.{role}.weight"] = value
    save_torch(older, str(tmp_path / "older.safetensors"))
    expected = merged_deltas([(read_lora(files / "sd-peft.safetensors"), 1.0)], targets)
    got = merged_deltas([(read_lora(tmp_path / "older.safetensors"), 1.0)], targets)
    assert got.keys() == expected.keys()
    assert all(np.array_equal(got[n], expected[n]) for n in got)


def test_half_precision_weights_come_back_exactly(files) -> None:
    """As on CUDA (fp16): the delta in float32, added in the weight's dtype."""
    from sd_backends.backend import load_diffusers_folder

    pipeline = load_diffusers_folder(files / "sd" / "tiny-sd", torch.float16)
    base = weights(pipeline)
    loras = LoraWeights()
    loras.set(pipeline, [(files / "sd-kohya.safetensors", 1.0)])
    assert changed(pipeline, base) and pipeline.unet.dtype == torch.float16
    loras.set(pipeline, [])
    assert changed(pipeline, base) == set()


def _save(path: Path, tensors: dict[str, tuple[int, ...]]) -> Path:
    save_file({k: np.ones(shape, np.float16) for k, shape in tensors.items()}, str(path))
    return path


LAYER = "lora_unet_mid_block_attentions_0_transformer_blocks_0_attn1_to_q"


@pytest.mark.parametrize(
    ("tensors", "reason"),
    [
        ({f"{LAYER}.hada_w1_a": (8, 2), f"{LAYER}.hada_w1_b": (2, 8)}, "a LyCORIS LoHa file"),
        ({f"{LAYER}.lokr_w1": (2, 2), f"{LAYER}.lokr_w2": (4, 4)}, "a LyCORIS LoKr file"),
        ({f"{LAYER}.lora_down.weight": (2, 8), f"{LAYER}.dora_scale": (8, 1)}, "a DoRA file"),
        ({"model.diffusion_model.out.2.weight": (4, 8)}, "is not a LoRA: none of its 1 tensors"),
        ({f"{LAYER}.lora_down.weight": (2, 8)}, "damaged: layer .* has no up factor"),
        ({f"{LAYER}.lora_down.weight": (2, 8), f"{LAYER}.lora_up.weight": (8, 3)}, "damaged"),
    ],
)
def test_files_that_are_no_plain_lora_are_refused_saying_what_they_are(
    tmp_path, tensors, reason
) -> None:
    with pytest.raises(ModelFileError, match=reason):
        read_lora(_save(tmp_path / "style.safetensors", tensors))


def test_a_missing_lora_file_is_refused_and_changes_nothing(files, sd, tmp_path) -> None:
    base = weights(sd._pipeline)
    with pytest.raises(ModelFileError, match="cannot read the LoRA"):
        LoraWeights().set(sd._pipeline, [(tmp_path / "gone.safetensors", 1.0)])
    assert changed(sd._pipeline, base) == set()


CROSS = "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_down.weight"
PEFT_CROSS = "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight"
TEXT = "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight"


@pytest.mark.parametrize(
    ("shapes", "family"),
    [
        ({"lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": [4, 1280]}, SDXL),
        ({"text_encoder_2.text_model.encoder.layers.0.mlp.fc1.lora_A.weight": [4, 1280]}, SDXL),
        ({CROSS: [8, 2048]}, SDXL),
        ({CROSS: [8, 768], TEXT: [8, 768]}, SD1),
        ({PEFT_CROSS: [8, 1024]}, SD2),
        ({TEXT: [8, 1024]}, SD2),
        ({TEXT: [8, 768]}, SD1),
        (
            {"lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": [4, 768]},
            SDXL,
        ),
        ({CROSS: [8, 80]}, UNKNOWN),
    ],
)
def test_family_from_the_tensors_alone(shapes, family) -> None:
    assert lora_family(shapes) == family
    assert is_lora(shapes)


def test_checkpoints_are_no_loras(files) -> None:
    from studio.api import safetensors_shapes

    unet = safetensors_shapes(
        files / "sd" / "tiny-sd" / "unet" / "diffusion_pytorch_model.safetensors"
    )
    assert not is_lora(unet)
    assert is_lora(safetensors_shapes(files / "sdxl-sgm.safetensors"))
    assert is_lora(["x.hada_w1_a", "x.hada_w1_b"])


def test_a_failure_while_fusing_restores_the_base_weights(files, sd, monkeypatch) -> None:
    pipeline = sd._pipeline
    base = weights(pipeline)
    loras = LoraWeights()
    loras.set(pipeline, [(files / "sd-other.safetensors", 1.0)])
    calls = []
    real = torch_loras._delta

    def failing(factors, weight):
        calls.append(1)
        if len(calls) == 5:
            raise ModelFileError("cannot read a tensor")
        return real(factors, weight)

    monkeypatch.setattr(torch_loras, "_delta", failing)
    with pytest.raises(ModelFileError, match="cannot read a tensor"):
        loras.set(pipeline, [(files / "sd-kohya.safetensors", 1.0)])
    assert changed(pipeline, base) == set()
    monkeypatch.setattr(torch_loras, "_delta", real)
    loras.set(pipeline, [(files / "sd-other.safetensors", 1.0)])  # fused again, not skipped
    assert changed(pipeline, base)
    loras.set(pipeline, [])


def test_two_layers_on_one_weight_are_refused(sd, tmp_path) -> None:
    module = "mid_block.attentions.0.transformer_blocks.0.attn1.to_q"
    tensors = {}
    for name in (f"unet.{module}", "lora_unet_" + module.replace(".", "_")):
        tensors |= {f"{name}.lora_down.weight": (2, 32), f"{name}.lora_up.weight": (32, 2)}
    lora = read_lora(_save(tmp_path / "twice.safetensors", tensors))
    with pytest.raises(ModelFileError, match=r"twice\.safetensors is ambiguous: 1 of its layers"):
        resolve(lora, LoraWeights.targets(sd._pipeline))


def test_a_lora_holding_nan_is_refused_and_changes_nothing(files, sd, tmp_path) -> None:
    tensors = load_file(files / "sd-kohya.safetensors")
    name = "lora_unet_mid_block_attentions_0_transformer_blocks_0_attn1_to_q.lora_up.weight"
    tensors[name][0, 0] = float("nan")
    save_torch(tensors, str(tmp_path / "nan.safetensors"))
    base = weights(sd._pipeline)
    with pytest.raises(ModelFileError, match=r"nan\.safetensors: layer .*attn1_to_q holds NaN"):
        LoraWeights().set(sd._pipeline, [(tmp_path / "nan.safetensors", 1.0)])
    assert changed(sd._pipeline, base) == set()
