"""A small CLIP-like ranker: text and image embeddings whose cosine says how well they match.

Trained contrastively on the Shapes world with hard negatives (the caption with one
clause changed), it ranks the transformer's candidates, best first.
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
    channels: int = 48
    embed: int = 128

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class TextEncoder(nn.Module):
    def __init__(self, c: RankerConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(c.text_vocab, c.width)
        self.position = nn.Parameter(torch.randn(c.text_length, c.width) * 0.02)
        layer = nn.TransformerEncoderLayer(
            c.width, c.heads, 4 * c.width, dropout=0.0, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, c.text_layers, enable_nested_tensor=False)
        self.out = nn.Linear(c.width, c.embed)

    def forward(self, text: Tensor) -> Tensor:
        pad = text == PAD
        pad[:, 0] = False  # an all-PAD prompt still attends to something
        h = self.encoder(self.embed(text) + self.position, src_key_padding_mask=pad)
        keep = (~pad).unsqueeze(-1).float()
        return self.out((h * keep).sum(1) / keep.sum(1))


class ImageEncoder(nn.Module):
    """A small CNN over the pixels plus two coordinate channels (for places, relations)."""

    def __init__(self, c: RankerConfig) -> None:
        super().__init__()
        k = c.channels

        def down(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1), nn.GELU(),
                nn.Conv2d(cout, cout, 3, stride=2, padding=1), nn.GELU(),
            )  # fmt: skip

        self.features = nn.Sequential(
            down(5, k), down(k, 2 * k), down(2 * k, 2 * k), down(2 * k, 4 * k)
        )
        self.out = nn.Sequential(
            nn.Flatten(), nn.Linear(4 * k * 16, 256), nn.GELU(), nn.Linear(256, c.embed)
        )
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 64), indexing="ij")
        self.register_buffer("coords", torch.stack([xs, ys])[None], persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        """images (B, 64, 64, 3) uint8."""
        x = images.permute(0, 3, 1, 2).float() / 127.5 - 1.0
        x = torch.cat([x, self.coords.expand(x.shape[0], -1, -1, -1)], dim=1)
        return self.out(self.features(x))


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
