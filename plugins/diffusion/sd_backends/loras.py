"""LoRA files: read, matched to a loaded model's weights, merged into weight deltas.

Torch-free (numpy and safetensors' numpy reader): the ONNX Runtime backend shares it.
Formats: kohya / A1111 (`lora_unet_…`, `lora_te_…`, SDXL's `lora_te1_…`/`lora_te2_…`,
`.lora_down/.lora_up/.alpha`; UNet names in the diffusers or the original LDM/SGM
layout), diffusers/PEFT (`unet.….lora_A.weight`, `text_encoder(_2).…`, optional
`.alpha`) and diffusers' older names (`….lora.down.weight`,
`….processor.to_q_lora.down.weight`); linear layers and convolutions (LoCon). LyCORIS'
other kinds (LoHa, LoKr, ...) and DoRA are refused by name.

A file fits a model by its layers' names and shapes alone, never by a label: every
layer must land on a weight of the model, in that weight's shape, or the file is
refused saying how many did not. Each layer adds weight x alpha / rank x up @ down.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import Any

import numpy as np

from studio.api import ModelFileError, safetensors_shapes

UNET, TEXT, TEXT_2 = "unet", "text_encoder", "text_encoder_2"
COMPONENTS = (UNET, TEXT, TEXT_2)
SD1, SD2, SDXL, UNKNOWN = "SD 1.x", "SD 2.x", "SDXL", "unknown"  # as architecture.py's

# A tensor's role by how its name ends, in every spelling trainers write
_ROLES = (
    (".lora_down.weight", "down"),
    (".lora_up.weight", "up"),
    (".lora_A.weight", "down"),
    (".lora_B.weight", "up"),
    (".lora_linear_layer.down.weight", "down"),
    (".lora_linear_layer.up.weight", "up"),
    (".lora.down.weight", "down"),
    (".lora.up.weight", "up"),
    (".alpha", "alpha"),
)
# diffusers' attention processors named the layer after the processor: attn1.to_q
_PROCESSOR = re.compile(r"^(.*)\.processor\.(to_q|to_k|to_v|to_out)_lora\.(down|up)\.weight$")
# Kinds that are no plain LoRA: named in the refusal, by a part of their tensors' names
_OTHER_KINDS = (
    (re.compile(r"\.hada_"), "LyCORIS LoHa"),
    (re.compile(r"\.lokr_"), "LyCORIS LoKr"),
    (re.compile(r"\.lora_mid\."), "LyCORIS LoCon with a Tucker decomposition (lora_mid)"),
    (re.compile(r"\.(dora_scale|lora_magnitude_vector)"), "DoRA"),
    (re.compile(r"\.on_input$"), "LyCORIS (IA)^3"),
    (re.compile(r"\.[ab][12]\.weight$"), "LyCORIS GLoRA"),
    (re.compile(r"\.diff(_b)?$"), "LyCORIS full (diff)"),
    (re.compile(r"\.[wb]_norm$"), "LyCORIS norm"),
)
# Where a layer's name says which model part it changes
_PREFIXES = (
    ("lora_unet_", UNET),
    ("lora_te1_", TEXT),
    ("lora_te2_", TEXT_2),
    ("lora_te_", TEXT),
    ("unet.", UNET),
    ("text_encoder_2.", TEXT_2),
    ("text_encoder.", TEXT),
    ("model.diffusion_model.", UNET),
    ("diffusion_model.", UNET),
    ("base_model.model.", ""),  # PEFT's own saving: the part is known by the match alone
)


@dataclass(frozen=True)
class LoraLayer:
    """One layer of a LoRA: the names of its factors, read when merged."""

    name: str  # as the file names it, for messages
    component: str  # UNET, TEXT, TEXT_2, or "" when the name does not say
    module: str  # the layer's module in the file's spelling (dots or underscores)
    down: str  # tensor names
    up: str
    down_shape: tuple[int, ...]  # [rank, in] or a convolution's [rank, in, kh, kw]
    up_shape: tuple[int, ...]  # [out, rank] or [out, rank, 1, 1]
    alpha: float | None

    @property
    def rank(self) -> int:
        return self.down_shape[0]

    @property
    def scale(self) -> float:
        """alpha / rank; a file without alpha means alpha = rank."""
        return 1.0 if self.alpha is None else self.alpha / self.rank

    @property
    def delta_shape(self) -> tuple[int, ...]:
        return (self.up_shape[0], *self.down_shape[1:])


@dataclass(frozen=True)
class LoraFile:
    path: Path
    layers: tuple[LoraLayer, ...]
    ignored: tuple[str, ...] = ()  # tensors of no layer (bundled embeddings, say)

    @property
    def name(self) -> str:
        return self.path.name


# -- reading -------------------------------------------------------------------------


def read_lora(path: Path) -> LoraFile:
    """The layers of a LoRA safetensors file (their factors stay on disk until merged).
    Raises ModelFileError for a file that is no LoRA, a kind other than a plain LoRA
    (LoHa, LoKr, ...) or a damaged one."""
    path = Path(path)
    shapes = safetensors_shapes(path)  # checks the header; says so when it is broken
    parts: dict[str, dict[str, str]] = {}
    ignored, kinds = [], []
    for key in shapes:
        parsed = _parse(key)
        if parsed is not None:
            layer, role = parsed
            parts.setdefault(layer, {})[role] = key
            continue
        kind = _other_kind(key)
        if kind is None:
            ignored.append(key)
        elif kind not in kinds:
            kinds.append(kind)
    if kinds:
        raise ModelFileError(
            f"{path.name} is a {' and '.join(kinds)} file, which Studio cannot apply yet "
            "(plain LoRA and LoCon files it can)"
        )
    layers = [name for name, roles in parts.items() if roles.keys() - {"alpha"}]
    if not layers:
        example = next(iter(shapes), "none")
        raise ModelFileError(
            f"{path.name} is not a LoRA: none of its {len(shapes)} tensors is a LoRA "
            f"layer's (e.g. {example})"
        )
    ignored += [
        key for name, roles in parts.items() if name not in layers for key in roles.values()
    ]
    with _Reader(path) as reader:
        found = tuple(_layer(path, name, parts[name], shapes, reader) for name in layers)
    return LoraFile(path, found, tuple(ignored))


def _parse(key: str) -> tuple[str, str] | None:
    """(layer name, "down" | "up" | "alpha") of a LoRA tensor's name, else None."""
    processor = _PROCESSOR.match(key)
    if processor:
        layer, kind, role = processor.groups()
        return f"{layer}.{'to_out.0' if kind == 'to_out' else kind}", role
    for suffix, role in _ROLES:
        if key.endswith(suffix):
            return key[: -len(suffix)], role
    return None


def _other_kind(key: str) -> str | None:
    return next((kind for pattern, kind in _OTHER_KINDS if pattern.search(key)), None)


def _layer(
    path: Path, name: str, roles: dict[str, str], shapes: dict[str, list[int]], reader: _Reader
) -> LoraLayer:
    if "down" not in roles or "up" not in roles:
        missing = "up" if "down" in roles else "down"
        raise ModelFileError(f"{path.name} is damaged: layer {name} has no {missing} factor")
    down, up = tuple(shapes[roles["down"]]), tuple(shapes[roles["up"]])
    if (
        len(down) not in (2, 4)
        or len(up) not in (2, 4)
        or up[1] != down[0]
        or prod(up[2:]) != 1
        or 0 in down + up
    ):
        raise ModelFileError(
            f"{path.name} is damaged: layer {name}'s factors have shapes "
            f"{list(up)} and {list(down)}, which do not multiply"
        )
    alpha = None
    if "alpha" in roles:
        value = reader.read(roles["alpha"]).reshape(-1)
        alpha = float(value[0]) if value.size == 1 else None
        if alpha is None or not np.isfinite(alpha):
            raise ModelFileError(f"{path.name} is damaged: layer {name}'s alpha is no number")
    component, module = _component(name)
    return LoraLayer(name, component, module, roles["down"], roles["up"], down, up, alpha)


def _component(name: str) -> tuple[str, str]:
    for prefix, component in _PREFIXES:
        if name.startswith(prefix):
            return component, name[len(prefix) :]
    return "", name


class _Reader:
    """Tensors of a safetensors file one at a time, as float32 numpy arrays. numpy has
    no bfloat16, which many LoRAs are saved in: those are widened from their bytes,
    whose place the header (already checked by safetensors) gives."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stack = contextlib.ExitStack()
        self._handle: Any = None
        self._header: dict[str, Any] | None = None

    def __enter__(self) -> _Reader:
        from safetensors import safe_open

        try:
            self._handle = self._stack.enter_context(safe_open(str(self.path), framework="np"))
        except Exception as error:
            raise ModelFileError(f"cannot read {self.path.name}: {error}") from error
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def read(self, key: str) -> np.ndarray:
        try:
            dtype = self._handle.get_slice(key).get_dtype()
            if dtype == "BF16":
                return self._bfloat16(key)
            return np.asarray(self._handle.get_tensor(key), dtype=np.float32)
        except ModelFileError:
            raise
        except Exception as error:  # a dtype numpy lacks (F8), a truncated file
            raise ModelFileError(f"cannot read {key} of {self.path.name}: {error}") from error

    def _bfloat16(self, key: str) -> np.ndarray:
        if self._header is None:
            with self.path.open("rb") as file:
                length = int.from_bytes(file.read(8), "little")
                self._header = {"@start": 8 + length, **json.loads(file.read(length))}
        entry = self._header[key]
        begin, end = entry["data_offsets"]
        raw = np.fromfile(
            self.path, dtype="<u2", count=(end - begin) // 2, offset=self._header["@start"] + begin
        )
        # bfloat16 is float32's upper half
        return (raw.astype(np.uint32) << 16).view(np.float32).reshape(entry["shape"])


# -- matching to a model -------------------------------------------------------------


def resolve(lora: LoraFile, targets: Mapping[str, tuple[int, ...]]) -> dict[str, LoraLayer]:
    """Each layer of `lora` by the model weight it changes (`targets`: the model's weight
    names, `unet.<module>.weight`, `text_encoder.…`, `text_encoder_2.…`, and shapes).
    Raises ModelFileError when any layer has no such weight or another shape."""
    index = _index(targets)
    matched: dict[str, LoraLayer] = {}
    missing: list[LoraLayer] = []
    misfits: list[tuple[LoraLayer, tuple[int, ...]]] = []
    twice: list[tuple[LoraLayer, LoraLayer]] = []
    for layer in lora.layers:
        target = _lookup(index, layer)
        if target is None:
            missing.append(layer)
        elif target in matched:
            twice.append((matched[target], layer))
        elif not _fits(layer.delta_shape, targets[target]):
            misfits.append((layer, tuple(targets[target])))
        else:
            matched[target] = layer
    total = len(lora.layers)
    if missing:
        raise ModelFileError(
            f"{lora.name} does not fit this model: {len(missing)} of its {total} layers "
            f"have no match (e.g. {missing[0].name}); it may be made for another model family"
        )
    if twice:
        first, second = twice[0]
        raise ModelFileError(
            f"{lora.name} is ambiguous: {len(twice)} of its layers change a weight another "
            f"of its layers changes too (e.g. {first.name} and {second.name})"
        )
    if misfits:
        layer, shape = misfits[0]
        raise ModelFileError(
            f"{lora.name} does not fit this model: {len(misfits)} of its {total} layers "
            f"have another shape than the model's weight (e.g. {layer.name}: "
            f"{list(layer.delta_shape)} for {list(shape)}); it may be made for another "
            "model family"
        )
    return matched


_AMBIGUOUS = ""


def _index(targets: Mapping[str, tuple[int, ...]]) -> dict[tuple[str, str], str]:
    """(component, underscored module name) -> target, for every spelling a file may
    use: kohya's underscores stand for dots (as A1111 matches them), CLIP's modules with
    and without `text_model.` (transformers 5 dropped it from CLIPTextModel), the UNet's
    also in the original LDM/SGM layout. A spelling two weights share matches neither."""
    modules = {}
    for target in targets:
        component, _, rest = target.partition(".")
        if component in COMPONENTS and rest.endswith(".weight"):
            modules[target] = (component, rest.removesuffix(".weight"))
    layout = _Layout.of(m for c, m in modules.values() if c == UNET)
    index: dict[tuple[str, str], str] = {}
    for target, (component, module) in modules.items():
        if component == UNET:
            spellings = {module, layout.sgm(module) if layout else None} - {None}
        else:
            bare = module.removeprefix("text_model.")
            spellings = {bare, "text_model." + bare}
        for spelling in spellings:
            key = (component, str(spelling).replace(".", "_"))
            index[key] = target if index.get(key, target) == target else _AMBIGUOUS
    return index


def _lookup(index: dict[tuple[str, str], str], layer: LoraLayer) -> str | None:
    key = layer.module.replace(".", "_")
    components = [layer.component] if layer.component else COMPONENTS
    found = {index.get((component, key)) for component in components} - {None}
    return found.pop() if len(found) == 1 and _AMBIGUOUS not in found else None


def _fits(delta: tuple[int, ...], weight: tuple[int, ...]) -> bool:
    """The same shape, a 1x1 convolution's kernel counting as a linear layer's matrix
    (SD 1.x's proj_in is one, SD 2.x's and SDXL's a linear layer)."""
    return _squeezed(delta) == _squeezed(weight)


def _squeezed(shape: Iterable[int]) -> tuple[int, ...]:
    shape = tuple(shape)
    while len(shape) > 2 and shape[-1] == 1:
        shape = shape[:-1]
    return shape


# The original (LDM/SGM) UNet's names for diffusers' modules: kohya's SDXL files use them
_SGM_FIXED = {
    "conv_in": "input_blocks.0.0",
    "conv_out": "out.2",
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
}
_SGM_RESNET = {
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}


@dataclass(frozen=True)
class _Layout:
    """What numbering the original layout's blocks needs, from the model's own modules:
    resnets per down block, and which up blocks have attention (their upsampler's slot)."""

    layers: int
    up_attention: frozenset[int]

    @classmethod
    def of(cls, modules: Iterable[str]) -> _Layout | None:
        resnets, attention = set(), set()
        for module in modules:
            parts = module.split(".")
            if len(parts) > 3 and parts[0] == "down_blocks" and parts[2] == "resnets":
                resnets.add(int(parts[3]))
            if len(parts) > 2 and parts[0] == "up_blocks" and parts[2] == "attentions":
                attention.add(int(parts[1]))
        return cls(max(resnets) + 1, frozenset(attention)) if resnets else None

    def sgm(self, module: str) -> str | None:
        """diffusers' UNet module name in the original layout (None where it has none)."""
        if module in _SGM_FIXED:
            return _SGM_FIXED[module]
        parts = module.split(".")
        if parts[0] == "mid_block" and len(parts) > 3:
            kind, index, rest = parts[1], int(parts[2]), parts[3:]
            if kind == "attentions":
                return "middle_block.1." + ".".join(rest)
            return _sgm_resnet(f"middle_block.{2 * index}", rest) if kind == "resnets" else None
        if parts[0] not in ("down_blocks", "up_blocks") or len(parts) < 5:
            return None
        block, kind, index, rest = int(parts[1]), parts[2], int(parts[3]), parts[4:]
        if parts[0] == "down_blocks":
            per = self.layers + 1  # its resnets and a downsampler
            if kind == "downsamplers":
                return f"input_blocks.{(block + 1) * per}.0.op" if rest == ["conv"] else None
            base = f"input_blocks.{1 + block * per + index}"
        else:
            per = self.layers + 1  # up blocks have one resnet more, the upsampler beside it
            if kind == "upsamplers":
                slot = 2 if block in self.up_attention else 1
                return (
                    f"output_blocks.{block * per + per - 1}.{slot}.conv"
                    if rest == ["conv"]
                    else None
                )
            base = f"output_blocks.{block * per + index}"
        if kind == "attentions":
            return f"{base}.1." + ".".join(rest)
        return _sgm_resnet(f"{base}.0", rest) if kind == "resnets" else None


def _sgm_resnet(base: str, rest: list[str]) -> str | None:
    return f"{base}.{_SGM_RESNET[rest[0]]}" if len(rest) == 1 and rest[0] in _SGM_RESNET else None


# -- merging -------------------------------------------------------------------------


@dataclass(frozen=True)
class Factors:
    """One LoRA's change of one weight: `scale` x up @ down, reshaped to the weight."""

    up: np.ndarray  # float32 [out, rank]
    down: np.ndarray  # float32 [rank, in], a convolution's kernel flattened in (LoCon)
    scale: float  # the LoRA's weight x alpha / rank

    def delta(self) -> np.ndarray:
        delta = self.up @ self.down
        delta *= np.float32(self.scale)
        return delta


def merged_deltas(
    loras: Sequence[tuple[LoraFile, float]], targets: Mapping[str, tuple[int, ...]]
) -> dict[str, np.ndarray]:
    """The summed float32 change of every weight the LoRAs touch, each at its weight."""
    return dict(iter_deltas(loras, targets))


def iter_deltas(
    loras: Sequence[tuple[LoraFile, float]], targets: Mapping[str, tuple[int, ...]]
) -> Iterator[tuple[str, np.ndarray]]:
    """As `merged_deltas`, one weight at a time (a whole SDXL LoRA's deltas in float32
    take gigabytes). A refusal comes before the first (as `iter_factors`)."""
    factors = iter_factors(loras, targets)
    return ((target, _summed(each).reshape(targets[target])) for target, each in factors)


def _summed(factors: list[Factors]) -> np.ndarray:
    total = factors[0].delta()
    for each in factors[1:]:
        total += each.delta()
    return total


def iter_factors(
    loras: Sequence[tuple[LoraFile, float]], targets: Mapping[str, tuple[int, ...]]
) -> Iterator[tuple[str, list[Factors]]]:
    """Each touched weight's factors from every LoRA that changes it, read as iterated
    (a caller on a GPU multiplies them there). Every LoRA is matched now, so a refusal
    comes before anything is read; LoRAs at weight 0 are left out (not even matched)."""
    plans = [(lora, float(weight), resolve(lora, targets)) for lora, weight in loras if weight]
    return _factors(plans)


def _factors(
    plans: list[tuple[LoraFile, float, dict[str, LoraLayer]]],
) -> Iterator[tuple[str, list[Factors]]]:
    touched = sorted({target for _, _, matched in plans for target in matched})
    with contextlib.ExitStack() as stack:
        readers = [stack.enter_context(_Reader(lora.path)) for lora, _, _ in plans]
        for target in touched:
            found = []
            for reader, (lora, weight, matched) in zip(readers, plans, strict=True):
                layer = matched.get(target)
                if layer is not None:
                    up = reader.read(layer.up).reshape(layer.up_shape[0], layer.rank)
                    down = reader.read(layer.down).reshape(layer.rank, -1)
                    if not (np.isfinite(up).all() and np.isfinite(down).all()):
                        raise ModelFileError(
                            f"{lora.name}: layer {layer.name} holds NaN or infinite values "
                            "(a damaged LoRA)"
                        )
                    found.append(Factors(up, down, weight * layer.scale))
            yield target, found


# -- what a file is ------------------------------------------------------------------


def is_lora(names: Iterable[str]) -> bool:
    """Whether tensor names are a LoRA's (LoHa and LoKr included: they are listed as
    LoRAs and refused when used, saying which kind)."""
    for name in names:
        parsed = _parse(name)
        if (parsed is not None and parsed[1] != "alpha") or _other_kind(name) in _LYCORIS:
            return True
    return False


_LYCORIS = ("LyCORIS LoHa", "LyCORIS LoKr")  # kinds whose names no checkpoint has
_BY_CROSS_ATTENTION = {768: SD1, 1024: SD2, 2048: SDXL}
_BY_TEXT = {768: SD1, 1024: SD2}
_CROSS_ATTENTION_K = re.compile(r"attn2[._]to_k$")
_TEXT_ATTENTION = re.compile(r"self_attn[._][qkv]_proj$")


def lora_family(shapes: Mapping[str, list[int]]) -> str:
    """SD 1.x, SD 2.x, SDXL or unknown, from a LoRA's tensor names and shapes alone (for
    the model library; matching a model never goes by it): SDXL's second text encoder,
    else the width of the text its UNet's cross-attention takes (768, 1024, 2048), else
    its text encoder's width (768 CLIP, 1024 OpenCLIP)."""
    if any(name.startswith(("lora_te2_", "text_encoder_2.")) for name in shapes):
        return SDXL
    downs = {}  # layer -> the width its down factor takes
    for name, shape in shapes.items():
        parsed = _parse(name)
        layer = parsed[0] if parsed and parsed[1] == "down" else name.removesuffix(".hada_w1_b")
        if layer != name and len(shape) > 1:
            downs[layer] = shape[1]
    for layer, width in downs.items():
        if _CROSS_ATTENTION_K.search(layer) and width in _BY_CROSS_ATTENTION:
            return _BY_CROSS_ATTENTION[width]
    if any(name.startswith("lora_te1_") for name in shapes):
        return SDXL  # kohya's SDXL names, only the first text encoder's layers in it
    for layer, width in downs.items():
        text = layer.startswith(("lora_te_", "text_encoder."))
        if text and _TEXT_ATTENTION.search(layer) and width in _BY_TEXT:
            return _BY_TEXT[width]
    return UNKNOWN
