"""Sampling image tokens from the transformer: KV cache, temperature, top-k, guidance."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from plugins.shapes.model import image_tokens as it
from plugins.shapes.model.common import SamplingOptions
from plugins.shapes.model.text_tokens import PAD
from plugins.shapes.model.transformer import ShapesTransformer, join_patch_tokens

# Called after each patch with (patches done, backgrounds (n,), patch ids so far (n, done)).
OnPatch = Callable[[int, Tensor, Tensor], None]


def pick(logits: Tensor, options: SamplingOptions, generator: torch.Generator) -> Tensor:
    """One sample per row of `logits` after temperature and top-k."""
    if options.temperature <= 0:
        return logits.argmax(-1)
    logits = logits / options.temperature
    if 0 < options.top_k < logits.shape[-1]:
        threshold = logits.topk(options.top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < threshold, float("-inf"))
    return torch.multinomial(F.softmax(logits, -1), 1, generator=generator)[:, 0]


@torch.inference_mode()
def sample_tokens(
    model: ShapesTransformer,
    text: Tensor,
    n: int,
    options: SamplingOptions,
    generator: torch.Generator,
    on_patch: OnPatch | None = None,
) -> tuple[Tensor, Tensor]:
    """`n` images for one prompt: (backgrounds (n,), patch ids (n, P)).

    With guidance, an unconditioned copy of the batch (all-PAD text) runs alongside and
    the log-probabilities are pushed away from it: u + g * (c - u).
    """
    c = model.config
    guided = options.guidance != 1.0
    prompts = text.expand(n, -1)
    if guided:
        prompts = torch.cat([prompts, torch.full_like(prompts, PAD)])

    def choose(logits: Tensor) -> Tensor:
        """Rows are the conditioned batch, then (with guidance) its unconditioned copy."""
        log_p = F.log_softmax(logits.float(), -1)
        if guided:
            cond, uncond = log_p.chunk(2)
            log_p = uncond + options.guidance * (cond - uncond)
        return pick(log_p, options, generator)

    def both(x: Tensor) -> Tensor:  # the same choice for the unconditioned copy
        return torch.cat([x, x]) if guided else x

    h, past = model.run(model.text_embed(prompts), 0)
    backgrounds = choose(model.background_head(h[:, -1]))
    x = model.background_embed(both(backgrounds))[:, None]
    patches = torch.empty(n, c.n_patches, dtype=torch.long)
    for p in range(c.n_patches):
        h, past = model.run(x, c.text_length + p, past)
        h = h[:, -1]
        kind = both(choose(model.kind_head(h)))
        code = torch.full_like(kind, c.n_codes)  # "no code" unless the patch is a mask
        masked = (kind[:n] >= it.FIRST_MASK).nonzero()[:, 0]
        if len(masked):  # codes only where needed: most patches are empty or solid
            rows = torch.cat([masked, masked + n]) if guided else masked
            code[rows] = both(choose(model.code_logits(h[rows], kind[rows])))
        patches[:, p] = join_patch_tokens(kind[:n], code[:n], c.n_codes)
        x = model.embed_patches(kind, code)[:, None]
        if on_patch is not None:
            on_patch(p + 1, backgrounds, patches[:, : p + 1])
    return backgrounds, patches
