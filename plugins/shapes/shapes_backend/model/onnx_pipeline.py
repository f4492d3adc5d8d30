"""Prompt -> ranked images with ONNX Runtime and numpy: no torch anywhere on this path.

The transformer body runs as two ONNX graphs (prefix, step); embeddings, heads and
sampling are numpy over the same safetensors weights the graphs point into.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from shapes_backend.model import image_tokens as it
from shapes_backend.model.bundle import TRANSFORMER, BundleError, Tokenizers
from shapes_backend.model.common import (
    Generated,
    ImageDraws,
    ImagePrompt,
    OnProgress,
    Phrases,
    SamplingOptions,
    check_known_words,
    prompt_groups,
)
from shapes_backend.model.edit import FREE, plan_edit, unchanged_images

PREFIX, STEP = "transformer-prefix.onnx", "transformer-step.onnx"
RANKER_TEXT, RANKER_IMAGE = "ranker-text.onnx", "ranker-image.onnx"
CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"


def cache_names(layers: int, kind: str) -> list[str]:
    """Per-layer KV cache names, keys then values: no stacking, so no copies to unstack."""
    return [f"{kind}_{part}_{i}" for part in ("k", "v") for i in range(layers)]


class KVCache:
    """The prompts' keys and values, once per group of rows that share one, and buffers
    for the image tokens' own, slot by slot: writing a token's keys is one contiguous
    block, and the slots used so far are a view the step graph takes without a copy.
    On CUDA the used slots still travel to the GPU at each step (ONNX Runtime has no
    slice update)."""

    def __init__(self, prompts: list[np.ndarray], rows: int, length: int) -> None:
        """`prompts`: keys then values per layer, as the prefix graph outputs them."""
        self.prompts = prompts
        _, heads, _, head = prompts[-1].shape  # a value: (groups, heads, text, head)
        self.slots = [np.zeros((length, rows, heads, head), np.float32) for _ in prompts]
        self.mask = np.zeros((1, 1, 1, length), np.float32)
        self.mask[..., 0] = -np.inf  # until the first slot is used
        self.used = 0

    def append(self, new: list[np.ndarray]) -> None:
        """`new`: one token's keys then values per layer, as the step graph outputs them."""
        for buffer, part in zip(self.slots, new, strict=True):
            buffer[self.used] = part[:, :, 0]
        self.mask[..., self.used] = 0.0
        self.used += 1

    def inputs(self) -> dict[str, np.ndarray]:
        """The step graph's cache inputs. With no slot used yet, one masked slot: the
        graph takes no empty inputs."""
        layers, used = len(self.slots) // 2, max(self.used, 1)
        past = [buffer[:used] for buffer in self.slots]
        return (
            {"mask": self.mask[..., :used]}
            | dict(zip(cache_names(layers, "prompt"), self.prompts, strict=True))
            | dict(zip(cache_names(layers, "past"), past, strict=True))
        )


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def favour(log_p: np.ndarray, prior: np.ndarray, bias: float) -> np.ndarray:
    """`log_p` with each row's `prior` token (FREE: none) raised by `bias`."""
    rows = np.flatnonzero(prior != FREE)
    bonus = np.zeros_like(log_p)
    bonus[rows, prior[rows]] = bias
    return log_p + bonus


def pick(log_p: np.ndarray, options: SamplingOptions, u: np.ndarray) -> np.ndarray:
    """One sample per row after temperature and top-k: the inverse CDF at each row's
    uniform draw `u`."""
    if options.temperature <= 0:
        return log_p.argmax(-1)
    logits = log_p / options.temperature
    if 0 < options.top_k < logits.shape[-1]:
        threshold = np.partition(logits, -options.top_k, axis=-1)[:, -options.top_k][:, None]
        logits = np.where(logits < threshold, -np.inf, logits)
    p = np.exp(logits - logits.max(-1, keepdims=True))
    cdf = np.cumsum(p, -1)
    u = u[:, None] * cdf[:, -1:]
    return np.minimum((cdf < u).sum(-1), p.shape[-1] - 1)


class OnnxShapesPipeline:
    def __init__(self, folder: Path, prefer_cuda: bool = True, threads: int = 0) -> None:
        """`threads` 0 lets ONNX Runtime choose (one per physical core)."""
        graphs = [folder / name for name in (PREFIX, STEP, RANKER_TEXT, RANKER_IMAGE)]
        for path in graphs:
            if not path.is_file():
                raise BundleError(
                    f"{path.name} is missing: export the model with "
                    "`python -m shapes_lab.model.export_onnx FOLDER`"
                )
        # Each weights file hashed once: the prefix and step graphs share one, the two
        # ranker graphs another (19 MB in all, about 16 ms).
        recorded = {path: recorded_weights(path) for path in graphs}
        digests = {weights: _sha256(weights) for weights in {w for w, _ in recorded.values()}}
        for path, (weights, digest) in recorded.items():
            if digests[weights] != digest:
                raise BundleError(
                    f"{path.name} was exported from other weights than "
                    f"{weights.name}: export the model again"
                )
        import onnxruntime as ort
        from safetensors import safe_open

        self.tokenizers = Tokenizers.load(folder)
        weights_path = folder / TRANSFORMER
        try:
            with safe_open(str(weights_path), framework="np") as handle:
                self.config = json.loads(handle.metadata()["config"])
                self.w = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
        except Exception as error:
            raise BundleError(f"cannot read {weights_path.name}: {error}") from error
        wanted = [CUDA, CPU] if prefer_cuda and CUDA in ort.get_available_providers() else [CPU]
        if CUDA in wanted:  # a build with CUDA on a machine without its libraries: no noise
            ort.set_default_logger_severity(4)
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: CUDA fallback warnings are expected
        options.intra_op_num_threads = threads
        self.sessions: dict[str, Any] = {}
        for path in graphs:
            self.sessions[path.name] = ort.InferenceSession(str(path), options, providers=wanted)
        # What the sessions really got, not what was asked for or is installed.
        self.provider = self.sessions[STEP].get_providers()[0]
        self._transposed: dict[str, np.ndarray] = {}

    @property
    def device(self) -> str:
        return "cuda:0" if self.provider == CUDA else "cpu"

    def _heads(self, name: str, h: np.ndarray) -> np.ndarray:
        if name not in self._transposed:  # once: a contiguous (in, out) matrix is faster
            self._transposed[name] = np.ascontiguousarray(self.w[f"{name}.weight"].T)
        return h @ self._transposed[name] + self.w[f"{name}.bias"]

    def generate(
        self,
        prompt: str,
        n: int,
        seed: int,
        options: SamplingOptions | None = None,
        rank: bool = True,
        on_progress: OnProgress | None = None,
        edit: ImagePrompt | None = None,
    ) -> Generated:
        """As `ShapesPipeline.generate`, image for image: the same draws, the same rules
        for an image prompt `edit` (`shapes_backend.model.edit`)."""
        options = options or SamplingOptions()
        encoded = check_known_words(self.tokenizers.text, prompt)
        draws = ImageDraws(seed, n)
        image = self.tokenizers.image
        plan = None if edit is None else plan_edit(image, edit, n, prompt)
        c, w = self.config, self.w
        n_codes = c["n_codes"]
        guided = options.guidance != 1.0
        # One group of n rows per prompt the tokens run under, as in `sample_tokens`.
        phrases = Phrases.of(self.tokenizers.text, prompt)
        prompts, code_prompt = prompt_groups(encoded.ids, options, phrases)
        groups = len(prompts)
        every = np.arange(n)
        log_likelihoods = np.zeros(n, np.float32)

        def choose(
            logits: np.ndarray,
            images: np.ndarray,
            given: np.ndarray | None = None,
            prior: np.ndarray | None = None,
        ) -> np.ndarray:
            """A token for each of `images` from its rows' `logits`: first its own, then
            (with guidance) its rows' under the empty prompt; or the one `given` (FREE:
            draw it), drawn with a variation's `prior` tokens favoured. Adds its
            log-probability to theirs, as `sample_tokens` does."""
            log_p = log_softmax(logits)
            if guided:
                cond, uncond = np.split(log_p, 2)
                log_p = uncond + options.guidance * (cond - uncond)
            steered = log_p if prior is None or plan is None else favour(log_p, prior, plan.bias)
            if given is None:
                token = pick(steered, options, draws.uniform(images))
            else:  # draws only for the free tokens, so given ones consume none
                token, free = given.copy(), np.flatnonzero(given == FREE)
                if len(free):
                    token[free] = pick(steered[free], options, draws.uniform(images[free]))
            log_likelihoods[images] += log_softmax(log_p)[np.arange(len(token)), token]
            return token

        def decode(ids: np.ndarray, tokens: np.ndarray) -> np.ndarray:
            return image.decode_batch(ids, tokens) if plan is None else plan.images(ids, tokens)

        def rows(images: np.ndarray, own: np.ndarray) -> np.ndarray:
            return np.concatenate([own, n + images]) if guided else own

        h, prompt_cache = self._run(PREFIX, {"x": w["text_embed.weight"][prompts]})
        # slots: the background and the patches but the last (whose keys nothing reads)
        cache = KVCache(prompt_cache, groups * n, c["n_patches"])
        background_logits = np.repeat(self._heads("background_head", h), n, axis=0)
        given = None if plan is None else plan.backgrounds
        prior = None if plan is None or plan.prior is None else plan.prior
        backgrounds = choose(
            background_logits[rows(every, every)], every, given, None if prior is None else prior[0]
        )
        x = w["background_embed.weight"][np.tile(backgrounds, groups)][:, None]
        patches = np.empty((n, c["n_patches"]), np.int64)
        for p in range(c["n_patches"]):
            position = np.array([c["text_length"] + p], np.int64)
            h, new = self._run(STEP, {"x": x, "position": position, **cache.inputs()})
            if p + 1 < c["n_patches"]:  # the last step's keys are never read
                cache.append(new)
            given_kinds = given_codes = None
            if plan is not None:
                given_kinds, given_codes = plan.kinds[:, p], plan.codes[:, p]
            prior_kind = None if prior is None else prior[1][:, p]
            kind_logits = self._heads("kind_head", h[rows(every, every)])
            kind = choose(kind_logits, every, given_kinds, prior_kind)
            code = np.full_like(kind, n_codes)  # "no code" unless the patch is a mask
            masked = np.flatnonzero(kind >= it.FIRST_MASK)
            if len(masked):  # codes only where needed: most patches are empty or solid
                kinds = kind[masked]
                own = code_prompt[kinds] * n + masked  # under the phrase of the patch's colour
                both = rows(masked, own)
                conditioned = h[both] + w["code_condition.weight"][np.tile(kinds, 1 + guided)]
                given = None if given_codes is None else given_codes[masked]
                prior_code = None  # the input's code where the drawn kind is the input's
                if prior is not None:
                    same = prior[1][masked, p] == kinds
                    prior_code = np.where(same, prior[2][masked, p], FREE)
                code_logits = self._heads("code_head", conditioned)
                code[masked] = choose(code_logits, masked, given, prior_code)
            is_mask = kind >= it.FIRST_MASK
            joined = (
                it.FIRST_MASK + (kind - it.FIRST_MASK) * n_codes + np.minimum(code, n_codes - 1)
            )
            patches[:, p] = np.where(is_mask, joined, kind)
            x = w["kind_embed.weight"][kind] + w["code_embed.weight"][code]
            x = np.tile(x, (groups, 1))[:, None]  # the same token under every prompt
            if on_progress is not None:
                done = p + 1
                row_end = done % image.grid[1] == 0
                partial = decode(backgrounds, patches[:, :done]) if row_end else None
                on_progress(done, image.n_patches, partial)
        images = decode(backgrounds, patches)
        generated = Generated(images, np.zeros(n, np.float32), log_likelihoods, encoded.unknown)
        if not rank:
            return generated
        ranked = generated.ranked(self.scores(encoded.ids, images))
        return ranked if plan is None else ranked.distinct(unchanged_images(plan))

    def _run(self, name: str, arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, list]:
        """Run a transformer graph: (last hidden state, new keys then values per layer)."""
        values = self.sessions[name].run(None, arrays)
        return values[0], values[1:]

    def scores(self, text: np.ndarray, images: np.ndarray) -> np.ndarray:
        (t,) = self.sessions[RANKER_TEXT].run(None, {"text": text[None]})
        (v,) = self.sessions[RANKER_IMAGE].run(None, {"images": images})
        return (v @ t[0]).astype(np.float32)


def recorded_weights(onnx_path: Path) -> tuple[Path, str]:
    """The weights file an exported graph names (beside it) and that file's SHA-256 as
    recorded at export. Checked before ONNX Runtime opens the graph, whose initializers
    point into those weights: over a shorter file it would fail with a less useful message."""
    try:
        recorded = model_metadata(onnx_path.read_bytes()).get("weights_sha256", "")
    except (OSError, ValueError) as error:
        raise BundleError(f"cannot read {onnx_path.name}: {error}") from error
    name, _, digest = recorded.partition(":")
    weights = onnx_path.parent / name
    if not name or "/" in name or "\\" in name or not weights.is_file():
        raise BundleError(f"{onnx_path.name} does not name its weights file beside it")
    return weights, digest


def model_metadata(data: bytes) -> dict[str, str]:
    """An ONNX model's `metadata_props` as a dict, read from the protobuf wire format
    directly: importing the `onnx` package for this one field costs more than the rest
    of a cold `studio generate` (ml_dtypes alone, about 0.6 s on the development VM).
    Only the ModelProto's top-level fields are walked; the graph is skipped unread."""
    metadata: dict[str, str] = {}
    for number, value in _fields(data):
        if number == _METADATA_PROPS and isinstance(value, bytes):
            entry = {n: v for n, v in _fields(value) if isinstance(v, bytes)}
            key = entry.get(1, b"").decode()
            metadata[key] = entry.get(2, b"").decode()
    return metadata


_METADATA_PROPS = 14  # ModelProto.metadata_props: repeated StringStringEntryProto {key=1, value=2}


def _fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, varint or bytes) for each field of one protobuf message."""
    at = 0
    while at < len(data):
        tag, at = _varint(data, at)
        number, kind = tag >> 3, tag & 7
        if kind == 0:  # varint
            value, at = _varint(data, at)
            yield number, value
        elif kind == 2:  # length-delimited: strings, bytes, sub-messages
            length, at = _varint(data, at)
            if at + length > len(data):
                raise ValueError("not an ONNX model (truncated field)")
            yield number, data[at : at + length]
            at += length
        elif kind in (1, 5):  # fixed 64 and 32 bits
            at += 8 if kind == 1 else 4
        else:
            raise ValueError(f"not an ONNX model (wire type {kind})")
    if at != len(data):
        raise ValueError("not an ONNX model (truncated field)")


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise ValueError("not an ONNX model (bad varint)")
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if byte < 0x80:
            return value, at
        shift += 7


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
