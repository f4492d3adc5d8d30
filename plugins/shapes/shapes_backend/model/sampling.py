"""Sampling image tokens from the transformer: KV cache, temperature, top-k, guidance."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor

from shapes_backend.model import image_tokens as it
from shapes_backend.model.common import ImageDraws, Phrases, SamplingOptions, prompt_groups
from shapes_backend.model.edit import FREE, EditPlan
from shapes_backend.model.transformer import ShapesTransformer, join_patch_tokens

# Called after each patch with (patches done, backgrounds (n,), patch ids so far (n, done)).
OnPatch = Callable[[int, Tensor, Tensor], None]


def pick(logits: Tensor, options: SamplingOptions, u: Tensor) -> Tensor:
    """One sample per row of `logits` after temperature and top-k: the inverse CDF at each
    row's uniform draw `u` (as the ONNX runtime draws)."""
    if options.temperature <= 0:
        return logits.argmax(-1)
    logits = logits / options.temperature
    if 0 < options.top_k < logits.shape[-1]:
        threshold = logits.topk(options.top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < threshold, float("-inf"))
    cdf = F.softmax(logits, -1).cumsum(-1)
    below = (cdf < u.to(cdf.dtype)[:, None] * cdf[:, -1:]).sum(-1)
    return below.clamp(max=logits.shape[-1] - 1)


@torch.inference_mode()
def sample_tokens(
    model: ShapesTransformer,
    text: Tensor,
    n: int,
    options: SamplingOptions,
    draws: ImageDraws,
    on_patch: OnPatch | None = None,
    phrases: Phrases | None = None,
    edit: EditPlan | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """`n` images for one prompt: (backgrounds (n,), patch ids (n, P), log-likelihoods (n,)).
    Image i draws from its own stream (`draws`): the same alone or in any batch.

    The same tokens run under several prompts, n rows each: the prompt; with guidance,
    the empty prompt, and the log-probabilities are pushed away from it, u + g * (c - u);
    with `phrases`, each object's own phrase, under which mask codes of its colour are
    drawn (`Phrases`). An image's log-likelihood sums its tokens' log-probabilities under
    that guided distribution, before temperature and top-k: the ranking weighs it in.

    With an image prompt's `edit` (`plan_edit`), the tokens it gives are fed as they are,
    with no draw; their log-probabilities count all the same (an image's likelihood
    covers all its tokens, drawn or given).
    """
    c = model.config
    guided = options.guidance != 1.0
    prompts, prompt_of_kind = prompt_groups(text.cpu().numpy(), options, phrases)
    groups, code_prompt = len(prompts), torch.from_numpy(prompt_of_kind)

    def choose(
        h: Tensor,
        head: Callable[[Tensor], Tensor],
        images: Tensor,
        rows: Tensor,
        given: Tensor | None = None,
        prior: Tensor | None = None,
    ) -> Tensor:
        """A token for each of `images` from its `rows` of hidden states `h` (and, with
        guidance, its rows under the empty prompt), or the one `given` (FREE: draw it),
        drawn with a variation's `prior` tokens favoured; adds its log-probability to
        theirs."""
        log_p = F.log_softmax(head(h[rows]).float(), -1)
        if guided:
            uncond = F.log_softmax(head(h[n + images]).float(), -1)
            log_p = uncond + options.guidance * (log_p - uncond)
        steered = log_p if prior is None else favour(log_p, prior.to(log_p.device))
        if given is None:
            token = pick(steered, options, uniform(images, log_p.device))
        else:  # draws only for the free tokens, so given ones consume none
            token = given.to(log_p.device)
            free = (token == FREE).nonzero()[:, 0]
            if len(free):
                u = uniform(images[free.to(images.device)], log_p.device)
                token = token.index_put((free,), pick(steered[free], options, u))
        picked = log_p.gather(1, token[:, None])[:, 0] - log_p.logsumexp(-1)
        log_likelihood.index_add_(0, images.cpu(), picked.cpu())
        return token

    def uniform(images: Tensor, device: torch.device) -> Tensor:
        return torch.from_numpy(draws.uniform(images.cpu().numpy())).to(device)

    def favour(log_p: Tensor, prior: Tensor) -> Tensor:
        """`log_p` with each row's `prior` token (FREE: none) raised by the plan's bias."""
        rows = (prior != FREE).nonzero()[:, 0]
        bonus = torch.zeros_like(log_p)
        bonus[rows, prior[rows]] = edit.bias if edit is not None else 0.0
        return log_p + bonus

    # What an edit gives (FREE: drawn): backgrounds (n,), kinds and codes (n, P).
    given_background = given_kinds = given_codes = None
    prior_background = prior_kinds = prior_codes = None
    if edit is not None:
        given_background, given_kinds, given_codes = (
            torch.from_numpy(a) for a in (edit.backgrounds, edit.kinds, edit.codes)
        )
        if edit.prior is not None:
            prior_background, prior_kinds, prior_codes = map(torch.from_numpy, edit.prior)
    log_likelihood = torch.zeros(n)
    prompts = torch.from_numpy(prompts).to(text.device).repeat_interleave(n, 0)
    h, past = model.run(model.text_embed(prompts), 0)
    h = h[:, -1]
    every = torch.arange(n)
    backgrounds = choose(h, model.background_head, every, every, given_background, prior_background)
    x = model.background_embed(backgrounds.repeat(groups))[:, None]
    patches = torch.empty(n, c.n_patches, dtype=torch.long)
    for p in range(c.n_patches):
        h, past = model.run(x, c.text_length + p, past)
        h = h[:, -1]
        kinds_at = codes_at = None
        if given_kinds is not None and given_codes is not None:
            kinds_at, codes_at = given_kinds[:, p], given_codes[:, p]
        prior_kind = None if prior_kinds is None else prior_kinds[:, p]
        kind = choose(h, model.kind_head, every, every, kinds_at, prior_kind)
        code = torch.full_like(kind, c.n_codes)  # "no code" unless the patch is a mask
        masked = (kind >= it.FIRST_MASK).nonzero()[:, 0]
        if len(masked):  # codes only where needed: most patches are empty or solid
            kinds = kind[masked]
            rows = code_prompt[kinds] * n + masked  # under the phrase of the patch's colour
            codes = None if codes_at is None else codes_at[masked.cpu()]
            prior_code = None
            if prior_kinds is not None and prior_codes is not None:  # the input's, same kind
                at = masked.cpu()
                same = prior_kinds[at, p] == kinds.cpu()
                prior_code = torch.where(same, prior_codes[at, p], FREE)
            code[masked] = choose(
                h, partial(model.code_logits, kind=kinds), masked, rows, codes, prior_code
            )
        patches[:, p] = join_patch_tokens(kind, code, c.n_codes)
        x = model.embed_patches(kind, code).repeat(groups, 1)[:, None]
        if on_patch is not None:
            on_patch(p + 1, backgrounds, patches[:, : p + 1])
    return backgrounds, patches, log_likelihood
