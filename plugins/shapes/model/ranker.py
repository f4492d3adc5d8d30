"""A small CLIP-like ranker: text and image embeddings whose cosine says how well they match.

Trained contrastively on the Shapes world with hard negatives on both sides: captions
with one clause changed, and "twin" scenes drawn for such changed captions, which share
the batch with the scene they differ from. It ranks the transformer's candidates, best
first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from plugins.shapes.model.text_tokens import PAD


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
        """images (B, 64, 64, 3) uint8."""
        b, p, n = images.shape[0], self.patch, IMAGE_SIDE // self.patch
        x = images.float() / 127.5 - 1.0
        x = x.view(b, n, p, n, p, 3).permute(0, 1, 3, 2, 4, 5).reshape(b, n * n, 3 * p * p)
        h = torch.cat([self.summary.expand(b, -1, -1), self.embed(x)], dim=1) + self.position
        return self.out(self.encoder(h)[:, 0])


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

    def loss(self, text: Tensor, images: Tensor, negatives: Tensor) -> Tensor:
        """Contrastive loss for matching (text[i], images[i]) pairs.

        Each image is scored against every caption in the batch and its own hard
        negatives (B, N, T); each caption against every image.
        """
        b = images.shape[0]
        t = self.embed_text(torch.cat([text, negatives.flatten(0, 1)]))
        captions, hard = t[:b], t[b:].view(b, -1, t.shape[-1])
        v = self.embed_images(images)
        scale = self.log_scale.clamp(max=4.6).exp()
        per_image = torch.cat([v @ captions.T, (hard @ v[:, :, None])[..., 0]], dim=1) * scale
        target = torch.arange(b)
        return (
            F.cross_entropy(per_image, target) + F.cross_entropy(scale * captions @ v.T, target)
        ) / 2

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
