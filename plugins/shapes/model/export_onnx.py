"""Export the built-in model as ONNX graphs that read their weights from the safetensors.

    .venv/bin/python -m plugins.shapes.model.export_onnx resources/shapes/model

Writes, beside the bundle's safetensors files:
- `transformer-prefix.onnx`: text embeddings (B, T, d) -> last hidden state, KV cache;
- `transformer-step.onnx`: one token's embedding, its position and fixed-size KV
  buffers with a mask of their used slots (one buffer per layer and k/v) -> its hidden
  state and its own keys and values, which the caller writes into the buffers;
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

from plugins.shapes.model.bundle import RANKER, TRANSFORMER, load_module
from plugins.shapes.model.onnx_pipeline import (
    PREFIX,
    RANKER_IMAGE,
    RANKER_TEXT,
    STEP,
    cache_length,
    cache_names,
)
from plugins.shapes.model.ranker import RankerConfig, ShapesRanker
from plugins.shapes.model.transformer import ShapesTransformer, TransformerConfig

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
    """One new token against fixed-size key/value buffers.

    The buffers are inputs only: the graph returns the new token's keys and values and
    the caller writes them into its buffers in place, so no step copies the cache (a
    growing, concatenated cache cost as much time as the matrix products)."""

    def __init__(self, model: ShapesTransformer) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, position: Tensor, mask: Tensor, *cache: Tensor):
        layers = len(cache) // 2
        x = x + self.model.position.index_select(0, position)
        new = []
        for block, past_k, past_v in zip(
            self.model.blocks, cache[:layers], cache[layers:], strict=True
        ):
            y, k, v = _attend(block.attn, block.ln1(x), past_k, past_v, mask)
            x = x + y
            x = x + block.mlp(block.ln2(x))
            new.append((k, v))
        return (self.model.ln_out(x)[:, -1], *_flat(new))


def _attend(attention, x: Tensor, past_k: Tensor, past_v: Tensor, mask: Tensor):
    """`Attention.forward` for one token over buffers whose unused slots `mask` hides
    (additive: 0 or -inf); the token also sees itself."""
    b, _, d = x.shape
    head = d // attention.heads
    q, k, v = attention.qkv(x).view(b, 1, 3, attention.heads, head).permute(2, 0, 3, 1, 4)
    k = k.transpose(-2, -1) * head**-0.5  # the cache's layout: transposed, pre-scaled
    p = torch.softmax(torch.cat([q @ past_k + mask, q @ k], dim=-1), dim=-1)
    y = p[..., :-1] @ past_v + p[..., -1:] * v
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
    batch = 2
    present = cache_names(c.layers, "present")
    past = cache_names(c.layers, "past")
    written = []
    with torch.no_grad():
        x = torch.randn(batch, c.text_length, c.width)
        axes = {"x": {0: "batch"}, "h": {0: "batch"}}
        axes |= {name: {0: "batch", 3 if "_k_" in name else 2: "length"} for name in present}
        written.append(_export(Prefix(transformer), (x,), bundle / PREFIX, ["x"],
                               ["h", *present], axes, bundle / TRANSFORMER, "model."))  # fmt: skip
        new = cache_names(c.layers, "new")
        axes = {name: {0: "batch"} for name in ("x", "h", *past, *new)}
        head, length = c.width // c.heads, cache_length(c.text_length, c.n_patches)
        cache = [torch.randn(batch, c.heads, head, length)] * c.layers + [
            torch.randn(batch, c.heads, length, head)
        ] * c.layers
        mask = torch.zeros(1, 1, 1, length)
        inputs = (torch.randn(batch, 1, c.width), torch.tensor([c.text_length]), mask, *cache)
        written.append(_export(Step(transformer), inputs, bundle / STEP,
                               ["x", "position", "mask", *past], ["h", *new], axes,
                               bundle / TRANSFORMER, "model."))  # fmt: skip
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
            written.append(_export(RankerEncoder(ranker, method), (example,), bundle / name,
                                   [key], ["embedding"],
                                   {key: {0: "batch"}, "embedding": {0: "batch"}},
                                   bundle / RANKER, "ranker."))  # fmt: skip
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    return written


def _export(module, inputs, path: Path, input_names, output_names, axes, weights: Path,
            prefix: str) -> Path:  # fmt: skip
    torch.onnx.export(
        module, inputs, str(path), input_names=input_names, output_names=output_names,
        dynamic_axes=axes, opset_version=OPSET, dynamo=False, do_constant_folding=False,
    )  # fmt: skip
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
