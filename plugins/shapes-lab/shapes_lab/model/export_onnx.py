"""Export the built-in model as ONNX graphs that read their weights from the safetensors.

    .venv/bin/python -m shapes_lab.model.export_onnx plugins/shapes/shapes_backend/weights

Writes, beside the bundle's safetensors files:
- `transformer-prefix.onnx`: text embeddings (G, T, d) -> last hidden state, KV cache,
  run once per distinct prompt (the prompt, and the empty one for guidance);
- `transformer-step.onnx`: one token's embedding for each of the B = G x n rows (group
  by group), its position, the G prompts' keys and values, and the image tokens' own so
  far, slot-major (S, B, heads, head), with an additive mask over those S slots ->
  its hidden state and its own keys and values, which the caller writes into its buffers;
- `ranker-text.onnx`, `ranker-image.onnx`: the ranker's two encoders (normalised).

The graphs hold no copy of the weights: each initializer that is a tensor of a
safetensors file points into that file (ONNX external data: location, offset, length),
so the model ships once. The heads, embedding tables and sampling run in numpy.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import struct
import sys
from pathlib import Path

import torch
from torch import Tensor, nn

from shapes_backend.model.bundle import RANKER, TRANSFORMER, load_module
from shapes_backend.model.onnx_pipeline import (
    PREFIX,
    RANKER_IMAGE,
    RANKER_TEXT,
    STEP,
    cache_names,
)
from shapes_backend.model.ranker import RankerConfig, ShapesRanker
from shapes_backend.model.transformer import ShapesTransformer, TransformerConfig

OPSET = 17


def _flat(present: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, ...]:
    return (*(k for k, _ in present), *(v for _, v in present))


class Prefix(nn.Module):
    def __init__(self, model: ShapesTransformer) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        h, present = self.model.run(x, 0)
        return (h[:, -1], *_flat(present))


class Step(nn.Module):
    """One new token per row against the prompts' keys and values and the image tokens'.

    The n rows of a group share one prompt, so its keys and values are read once per
    group, by a matrix product over the group's rows, instead of once per row (reading
    the cache is what bounds a step). The image tokens' keys and values come slot-major,
    only the slots used so far: the caller's buffers grow by one contiguous write per
    step, and nothing reads the unused slots."""

    def __init__(self, model: ShapesTransformer) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, position: Tensor, mask: Tensor, *cache: Tensor):
        layers = len(cache) // 4
        x = x + self.model.position.index_select(0, position)
        new = []
        for i, block in enumerate(self.model.blocks):
            prompt = cache[i], cache[layers + i]
            past = cache[2 * layers + i], cache[3 * layers + i]
            y, k, v = _attend(block.attn, block.ln1(x), prompt, past, mask)
            x = x + y
            x = x + block.mlp(block.ln2(x))
            new.append((k, v))
        return (self.model.ln_out(x)[:, -1], *_flat(new))


def _attend(
    attention, x: Tensor, prompt: tuple[Tensor, Tensor], past: tuple[Tensor, Tensor], mask: Tensor
):
    """`Attention.forward` for one token per row over its group's prompt (keys transposed
    and pre-scaled, (G, heads, head, T); values (G, heads, T, head)) and its own earlier
    tokens (S, B, heads, head) where `mask` (additive: 0 or -inf) allows; the token also
    sees itself. Returns its keys (pre-scaled) and values, (B, heads, 1, head)."""
    b, _, d = x.shape
    heads, head = attention.heads, d // attention.heads
    (prompt_k, prompt_v), (past_k, past_v) = prompt, past
    groups, text = prompt_k.shape[0], prompt_k.shape[-1]
    q, k, v = attention.qkv(x).view(b, 1, 3, heads, head).permute(2, 0, 3, 1, 4)
    k = k * head**-0.5
    by_group = q.reshape(groups, -1, heads, head).transpose(1, 2)  # (G, heads, n, head)
    to_prompt = (by_group @ prompt_k).transpose(1, 2).reshape(b, heads, 1, text)
    to_past = q @ past_k.permute(1, 2, 3, 0) + mask
    to_self = (q * k).sum(-1, keepdim=True)
    p = torch.softmax(torch.cat([to_prompt, to_past, to_self], dim=-1), dim=-1)
    from_prompt = p[..., :text].reshape(groups, -1, heads, text).transpose(1, 2) @ prompt_v
    y = from_prompt.transpose(1, 2).reshape(b, heads, 1, head)
    y = y + p[..., text:-1] @ past_v.permute(1, 2, 0, 3) + p[..., -1:] * v
    return attention.out(y.transpose(1, 2).reshape(b, 1, d)), k, v


class RankerEncoder(nn.Module):
    """One of the ranker's two encoders (`embed_text` or `embed_images`) as a graph."""

    def __init__(self, ranker: ShapesRanker, method: str) -> None:
        super().__init__()
        self.ranker = ranker
        self.method = method

    def forward(self, x: Tensor) -> Tensor:
        return getattr(self.ranker, self.method)(x)


def export(bundle: Path) -> list[Path]:
    transformer = load_module(ShapesTransformer, TransformerConfig, bundle / TRANSFORMER)
    ranker = load_module(ShapesRanker, RankerConfig, bundle / RANKER)
    c = transformer.config
    groups, batch = 2, 6  # distinct, so that no size is traced as a constant
    present = cache_names(c.layers, "present")
    prompt, past = cache_names(c.layers, "prompt"), cache_names(c.layers, "past")
    written = []
    with torch.no_grad():
        x = torch.randn(groups, c.text_length, c.width)
        axes = {"x": {0: "batch"}, "h": {0: "batch"}}
        axes |= {name: {0: "batch", 3 if "_k_" in name else 2: "length"} for name in present}
        written.append(
            _export(
                Prefix(transformer),
                (x,),
                bundle / PREFIX,
                ["x"],
                ["h", *present],
                axes,
                bundle / TRANSFORMER,
                "model.",
            )
        )
        new = cache_names(c.layers, "new")
        axes = {name: {0: "batch"} for name in ("x", "h", *new)}
        axes |= {name: {0: "length", 1: "batch"} for name in past}
        axes["mask"] = {3: "length"}
        axes |= {name: {0: "groups"} for name in prompt}
        head, length, t = c.width // c.heads, c.n_patches, c.text_length
        cache = [torch.randn(groups, c.heads, head, t)] * c.layers
        cache += [torch.randn(groups, c.heads, t, head)] * c.layers
        cache += [torch.randn(length, batch, c.heads, head)] * (2 * c.layers)
        mask = torch.zeros(1, 1, 1, length)
        inputs = (torch.randn(batch, 1, c.width), torch.tensor([c.text_length]), mask, *cache)
        written.append(
            _export(
                Step(transformer),
                inputs,
                bundle / STEP,
                ["x", "position", "mask", *prompt, *past],
                ["h", *new],
                axes,
                bundle / TRANSFORMER,
                "model.",
            )
        )
    # nn.TransformerEncoderLayer's fused inference path has no ONNX form: export the
    # layers as plain operators.
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        for method, name, example in (
            ("embed_text", RANKER_TEXT, torch.ones(1, ranker.config.text_length, dtype=torch.long)),
            ("embed_images", RANKER_IMAGE, torch.zeros(batch, 64, 64, 3, dtype=torch.uint8)),
        ):
            key = "text" if method == "embed_text" else "images"
            written.append(
                _export(
                    RankerEncoder(ranker, method),
                    (example,),
                    bundle / name,
                    [key],
                    ["embedding"],
                    {key: {0: "batch"}, "embedding": {0: "batch"}},
                    bundle / RANKER,
                    "ranker.",
                )
            )
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    return written


def _export(
    module, inputs, path: Path, input_names, output_names, axes, weights: Path, prefix: str
) -> Path:
    torch.onnx.export(
        module,
        inputs,
        str(path),
        input_names=input_names,
        output_names=output_names,
        dynamic_axes=axes,
        opset_version=OPSET,
        dynamo=False,
        do_constant_folding=False,
    )
    point_at_safetensors(path, weights, prefix)
    return path


def safetensors_layout(path: Path) -> dict[str, tuple[int, int]]:
    """{tensor name: (byte offset in the file, length)} of a safetensors file."""
    with path.open("rb") as handle:
        (header_size,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(header_size))
    start = 8 + header_size
    return {
        name: (start + info["data_offsets"][0], info["data_offsets"][1] - info["data_offsets"][0])
        for name, info in header.items()
        if name != "__metadata__"
    }


def point_at_safetensors(onnx_path: Path, weights: Path, prefix: str) -> None:
    """Replace each initializer that equals a tensor of `weights` by a reference into it."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path))
    layout = safetensors_layout(weights)
    data = weights.read_bytes()
    shared = 0
    for initializer in model.graph.initializer:
        name = initializer.name.removeprefix(prefix)
        if name not in layout:
            continue
        offset, length = layout[name]
        raw = numpy_helper.to_array(initializer).tobytes()
        if raw != data[offset : offset + length]:
            raise RuntimeError(f"{initializer.name} differs from {name} in {weights.name}")
        initializer.ClearField("raw_data")
        initializer.data_location = onnx.TensorProto.EXTERNAL
        del initializer.external_data[:]
        for key, value in (("location", weights.name), ("offset", offset), ("length", length)):
            initializer.external_data.add(key=key, value=str(value))
        shared += 1
    if not shared:
        raise RuntimeError(f"no initializer of {onnx_path.name} was found in {weights.name}")
    digest = hashlib.sha256(data).hexdigest()
    model.metadata_props.add(key="weights_sha256", value=f"{weights.name}:{digest}")
    onnx.save(model, str(onnx_path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path, help="the model folder (safetensors files)")
    args = parser.parse_args(argv)
    for path in export(args.bundle):
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
