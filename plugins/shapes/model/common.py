"""What both runtimes (PyTorch and ONNX Runtime) share: results, progress, word checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from plugins.shapes.model.text_tokens import UNK, Encoded, TextTokenizer

# Called after every patch (patches done, of total, partial images): the images, decoded
# so far (n, 64, 64, 3), come at the end of each row of patches and are None otherwise.
# It may raise to stop sampling (the engine's cancel does).
OnProgress = Callable[[int, int, np.ndarray | None], None]


@dataclass(frozen=True)
class SamplingOptions:
    """Defaults chosen on a tuning prompt set, not the eval set (MODEL.md): a low
    temperature and mild guidance win; guidance 3 breaks objects apart."""

    temperature: float = 0.3
    top_k: int = 32
    guidance: float = 2.0  # classifier-free guidance scale; 1 = none


@dataclass
class Generated:
    images: np.ndarray  # (n, 64, 64, 3) uint8, best first when ranked
    scores: np.ndarray  # (n,) ranker scores (cosine), or zeros without ranking
    unknown_words: tuple[str, ...]


class NoKnownWords(ValueError):
    """A prompt none of whose words the model knows: it would draw noise."""


def check_known_words(tokenizer: TextTokenizer, prompt: str) -> Encoded:
    """The encoded prompt; raises NoKnownWords when it has no word the model knows."""
    encoded = tokenizer.encode(prompt)
    if not (encoded.ids > UNK).any():  # nothing but padding and unknown words
        raise NoKnownWords(
            "none of the words of this prompt are known to the built-in model "
            "(it draws shapes: try e.g. 'three yellow hearts on a black background')"
        )
    return encoded
