"""A small CLIP-like ranker: text and image embeddings whose cosine says how well they match.

Trained contrastively on the Shapes world with hard negatives on both sides: captions
with one clause changed, "twin" scenes drawn for such changed captions, which share the
batch with the scene they differ from, and "near misses": the scene's own image tokens
with a stray fragment added or a piece taken away, the transformer's typical slips.
While training, small heads also name what covers each patch (shape, colour, size, an
object's centre), so the image encoder learns what is where from dense labels rather
than from the contrastive signal alone. It ranks the transformer's candidates, best
first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from shapes_backend import world
from shapes_backend.model.text_tokens import PAD


@dataclass(frozen=True)
class RankerConfig:
    text_vocab: int
    text_length: int = 32
    width: int = 128
    text_layers: int = 2
    heads: int = 4
    patch: int = 8
    image_layers: int = 4
    embed: int = 128

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


IMAGE_SIDE = 64


def _encoder(c: RankerConfig, layers: int) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(
        c.width, c.heads, 4 * c.width, dropout=0.0, batch_first=True, norm_first=True
    )
    return nn.TransformerEncoder(
        layer, layers, norm=nn.LayerNorm(c.width), enable_nested_tensor=False
    )


class TextEncoder(nn.Module):
    def __init__(self, c: RankerConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(c.text_vocab, c.width)
        self.position = nn.Parameter(torch.randn(c.text_length, c.width) * 0.02)
        self.encoder = _encoder(c, c.text_layers)
        self.out = nn.Linear(c.width, c.embed)

    def forward(self, text: Tensor) -> Tensor:
        pad = text == PAD
        pad[:, 0] = False  # an all-PAD prompt still attends to something
        h = self.embed(text) + self.position[: text.shape[1]]  # text may come trimmed
        h = self.encoder(h, src_key_padding_mask=pad)
        keep = (~pad).unsqueeze(-1).float()
        return self.out((h * keep).sum(1) / keep.sum(1))


class ImageEncoder(nn.Module):
    """A small ViT: one token per 8 x 8 patch (the image tokenizer's grid, so an object's
    edge pixels stay within a token) and a summary token, with learned positions for
    places and relations."""

    def __init__(self, c: RankerConfig) -> None:
        super().__init__()
        self.patch = c.patch
        tokens = (IMAGE_SIDE // c.patch) ** 2
        self.embed = nn.Linear(3 * c.patch**2, c.width)
        self.summary = nn.Parameter(torch.zeros(1, 1, c.width))
        self.position = nn.Parameter(torch.randn(tokens + 1, c.width) * 0.02)
        self.encoder = _encoder(c, c.image_layers)
        self.out = nn.Linear(c.width, c.embed)

    def forward(self, images: Tensor) -> Tensor:
        return self.out(self.features(images)[:, 0])

    def features(self, images: Tensor) -> Tensor:
        """images (B, 64, 64, 3) uint8 -> (B, 1 + patches, width): summary token first."""
        b, p, n = images.shape[0], self.patch, IMAGE_SIDE // self.patch
        x = images.float() / 127.5 - 1.0
        x = x.view(b, n, p, n, p, 3).permute(0, 1, 3, 2, 4, 5).reshape(b, n * n, 3 * p * p)
        h = torch.cat([self.summary.expand(b, -1, -1), self.embed(x)], dim=1) + self.position
        return self.encoder(h)


class ShapesRanker(nn.Module):
    def __init__(self, config: RankerConfig) -> None:
        super().__init__()
        self.config = config
        self.text = TextEncoder(config)
        self.image = ImageEncoder(config)
        self.log_scale = nn.Parameter(torch.tensor(2.66))  # exp = 1/0.07, as CLIP starts

    def embed_text(self, text: Tensor) -> Tensor:
        return F.normalize(self.text(text), dim=-1)

    def embed_images(self, images: Tensor) -> Tensor:
        return F.normalize(self.image(images), dim=-1)

    def scores(self, text: Tensor, images: Tensor) -> Tensor:
        """Cosine similarity of one prompt (T,) with each image (B, 64, 64, 3): (B,)."""
        return self.embed_images(images) @ self.embed_text(text[None])[0]

    def loss(
        self,
        text: Tensor,
        images: Tensor,
        negatives: Tensor,
        near_misses: Tensor | None = None,
        heads: PatchHeads | None = None,
        labels: Tensor | None = None,
    ) -> Tensor:
        """Contrastive loss for matching (text[i], images[i]) pairs.

        Each image is scored against every caption in the batch and its own hard
        negatives (B, N, T); each caption against every image and, where given, the near
        miss of its own image (near_misses[:M] belong to images[:M]). With `heads`, plus
        their loss on the patch `labels` (B, 4, patches).
        """
        b, m = images.shape[0], 0 if near_misses is None else len(near_misses)
        t = self.embed_text(torch.cat([text, negatives.flatten(0, 1)]))
        captions, hard = t[:b], t[b:].view(b, -1, t.shape[-1])
        h = self.image.features(images if not m else torch.cat([images, near_misses]))
        v = F.normalize(self.image.out(h[:, 0]), dim=-1)
        v, missed = v[:b], v[b:]
        scale = self.log_scale.clamp(max=4.6).exp()
        per_image = torch.cat([v @ captions.T, (hard @ v[:, :, None])[..., 0]], dim=1) * scale
        per_caption = scale * captions @ v.T
        if m:
            own_miss = torch.full((b,), float("-inf")).index_put(
                (torch.arange(m),), scale * (captions[:m] * missed).sum(-1)
            )
            per_caption = torch.cat([per_caption, own_miss[:, None]], dim=1)
        target = torch.arange(b)
        loss = (F.cross_entropy(per_image, target) + F.cross_entropy(per_caption, target)) / 2
        if heads is not None and labels is not None:
            loss = loss + heads.loss(h[:b, 1:], labels)
        return loss

    @torch.no_grad()
    def hard_negative_accuracy(self, text: Tensor, images: Tensor, negatives: Tensor) -> float:
        """The share of images that score their own caption above all their hard negatives."""
        was_training = self.training
        self.eval()
        v = self.embed_images(images)
        own = (v * self.embed_text(text)).sum(-1)
        hard = self.embed_text(negatives.flatten(0, 1)).view(*negatives.shape[:2], -1)
        beaten = own[:, None] > (hard @ v[:, :, None])[..., 0]
        self.train(was_training)
        return float(beaten.all(1).float().mean())


PATCH_LABELS = (len(world.SHAPES) + 1, len(world.COLORS) + 1, len(world.SIZES) + 1, 2)


class PatchHeads(nn.Module):
    """Training-only heads on the image encoder's patch tokens: the shape, colour and size
    of the object covering each patch (0: none) and whether the object's centre lies
    in it. They are not part of the shipped ranker."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.head = nn.Linear(width, sum(PATCH_LABELS))

    def loss(self, patches: Tensor, labels: Tensor) -> Tensor:
        """patches (B, P, width), labels (B, 4, P): the mean cross-entropy of the four."""
        logits = self.head(patches).split(PATCH_LABELS, dim=-1)
        pairs = zip(logits, labels.unbind(1), strict=True)
        return sum(F.cross_entropy(x.flatten(0, 1), y.flatten()) for x, y in pairs) / len(logits)
