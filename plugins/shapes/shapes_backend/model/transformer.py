"""The DALL-E-style transformer: text tokens, then image tokens, one causal sequence.

Image tokens are factored as the image tokenizer makes them: a background token, then
per patch a "kind" (empty, solid colour c, or mask in colour c) and, for masks, one of
K mask codes. The code head sees the kind it is predicting a code for, so the joint
token is predicted as p(kind) * p(code | kind) without a 8*K-way softmax.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from shapes_backend.model import image_tokens as it


@dataclass(frozen=True)
class TransformerConfig:
    text_vocab: int
    n_codes: int
    text_length: int = 32
    n_patches: int = 64
    width: int = 256
    layers: int = 4
    heads: int = 8

    @property
    def n_kinds(self) -> int:
        return it.FIRST_MASK + it.N_COLORS  # empty, 8 solid, 8 masked

    @property
    def length(self) -> int:
        return self.text_length + 1 + self.n_patches

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def split_patch_tokens(tokens: Tensor, n_codes: int) -> tuple[Tensor, Tensor]:
    """Image-tokenizer patch ids -> (kind, code); code = n_codes where there is none."""
    is_mask = tokens >= it.FIRST_MASK
    offset = (tokens - it.FIRST_MASK).clamp(min=0)
    kind = torch.where(is_mask, it.FIRST_MASK + offset // n_codes, tokens)
    code = torch.where(is_mask, offset % n_codes, torch.full_like(tokens, n_codes))
    return kind, code


def join_patch_tokens(kind: Tensor, code: Tensor, n_codes: int) -> Tensor:
    is_mask = kind >= it.FIRST_MASK
    joined = it.FIRST_MASK + (kind - it.FIRST_MASK) * n_codes + code.clamp(max=n_codes - 1)
    return torch.where(is_mask, joined, kind)


class Attention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: Tensor, past_k: Tensor, past_v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x (B, n, d) -> (y, keys, values) with the new tokens appended to the cache.

        The cache keeps keys transposed and pre-scaled, (B, heads, d/heads, t), and values
        as (B, heads, t, d/heads), so a step touches it only to append. Causal over the new
        tokens when there is no past (the prefix, training); one new token sees it all.
        """
        b, n, d = x.shape
        head = d // self.heads
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, head).permute(2, 0, 3, 1, 4)
        keys = torch.cat([past_k, k.transpose(-2, -1) * head**-0.5], dim=-1)
        values = torch.cat([past_v, v], dim=2)
        # A python bool even while tracing for ONNX: each exported graph is one of the cases.
        if bool(past_k.shape[-1] == 0 and n > 1):
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        elif torch.jit.is_tracing():  # the exported step: plain ops ONNX Runtime fuses well
            y = torch.softmax(q @ keys, dim=-1) @ values
        else:  # eager PyTorch: its fused kernel is faster than the same three ops
            y = F.scaled_dot_product_attention(q, keys.transpose(-2, -1), values, scale=1.0)
        return self.out(y.transpose(1, 2).reshape(b, n, d)), keys, values


class Block(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.ln2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)
        )

    def forward(self, x: Tensor, past_k: Tensor, past_v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        y, k, v = self.attn(self.ln1(x), past_k, past_v)
        x = x + y
        return x + self.mlp(self.ln2(x)), k, v


class ShapesTransformer(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        c = self.config = config
        d = c.width
        self.text_embed = nn.Embedding(c.text_vocab, d)
        self.background_embed = nn.Embedding(it.N_BACKGROUNDS, d)
        self.kind_embed = nn.Embedding(c.n_kinds, d)
        self.code_embed = nn.Embedding(c.n_codes + 1, d)  # the last: "no code"
        self.position = nn.Parameter(torch.zeros(c.length, d))
        self.blocks = nn.ModuleList(Block(d, c.heads) for _ in range(c.layers))
        self.ln_out = nn.LayerNorm(d)
        self.text_head = nn.Linear(d, c.text_vocab)
        self.background_head = nn.Linear(d, it.N_BACKGROUNDS)
        self.kind_head = nn.Linear(d, c.n_kinds)
        self.code_condition = nn.Embedding(c.n_kinds, d)
        self.code_head = nn.Linear(d, c.n_codes)
        self.apply(self._init)
        nn.init.normal_(self.position, std=0.02)
        scale = 0.02 / math.sqrt(2 * c.layers)  # residual projections, as GPT-2 does
        for block in self.blocks:
            nn.init.normal_(block.attn.out.weight, std=scale)
            nn.init.normal_(block.mlp[2].weight, std=scale)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)

    # -- the sequence ------------------------------------------------------------

    def embed_patches(self, kind: Tensor, code: Tensor) -> Tensor:
        return self.kind_embed(kind) + self.code_embed(code)

    def run(self, x: Tensor, start: int | Tensor, past: list[tuple[Tensor, Tensor]] | None = None):
        """Blocks over embeddings `x` at positions start.. with a KV cache (list per layer).

        `start` may be a 1-element tensor (so an exported graph takes it as an input)."""
        b = x.shape[0]
        if isinstance(start, Tensor):
            x = x + self.position.index_select(0, start)
        else:
            x = x + self.position[start : start + x.shape[1]]
        if past is None:
            heads, head = self.config.heads, self.config.width // self.config.heads
            no_keys, no_values = x.new_zeros(b, heads, head, 0), x.new_zeros(b, heads, 0, head)
            past = [(no_keys, no_values)] * len(self.blocks)
        present = []
        for block, (k, v) in zip(self.blocks, past, strict=True):
            x, k, v = block(x, k, v)
            present.append((k, v))
        return self.ln_out(x), present

    def code_logits(self, h: Tensor, kind: Tensor) -> Tensor:
        return self.code_head(h + self.code_condition(kind))

    # -- training ----------------------------------------------------------------

    def losses(self, text: Tensor, background: Tensor, patches: Tensor) -> tuple[Tensor, Tensor]:
        """(text loss, image loss) in nats per token for a batch of full sequences.

        text (B, T) with PAD=0 after the words; background (B,); patches (B, P) ids.
        """
        c = self.config
        kind, code = split_patch_tokens(patches, c.n_codes)
        x = torch.cat(
            [
                self.text_embed(text),
                self.background_embed(background)[:, None],
                self.embed_patches(kind[:, :-1], code[:, :-1]),
            ],
            dim=1,
        )
        h, _ = self.run(x, 0)
        t = c.text_length
        text_logits = self.text_head(h[:, : t - 1])
        text_loss = F.cross_entropy(
            text_logits.reshape(-1, c.text_vocab), text[:, 1:].reshape(-1), ignore_index=0
        )
        background_loss = F.cross_entropy(self.background_head(h[:, t - 1]), background)
        image_h = h[:, t:]  # position of the background token and patches 0..P-2
        kind_loss = F.cross_entropy(
            self.kind_head(image_h).reshape(-1, c.n_kinds), kind.reshape(-1), reduction="sum"
        )
        has_code = code < c.n_codes
        code_loss = F.cross_entropy(
            self.code_logits(image_h[has_code], kind[has_code]), code[has_code], reduction="sum"
        )
        n_image_tokens = kind.numel() + background.numel()
        image_loss = (background_loss * background.numel() + kind_loss + code_loss) / n_image_tokens
        return torch.nan_to_num(text_loss), image_loss
