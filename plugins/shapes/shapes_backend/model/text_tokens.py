"""The text tokenizer: one token per word the Shapes parser knows, the rest unknown."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from shapes_backend.parser import known_words, normalize, word_starts

PAD, UNK = 0, 1
SPECIALS = ("<pad>", "<unk>")
TEXT_LENGTH = 32  # words a prompt may use; captions of this world need fewer than 25


def cut_at(text: str) -> int | None:
    """Where in `text` the words past TEXT_LENGTH start (`encode` drops them), or None
    when it has no more words than that."""
    starts = word_starts(text)
    return starts[TEXT_LENGTH] if len(starts) > TEXT_LENGTH else None


@dataclass(frozen=True)
class Encoded:
    ids: np.ndarray  # (TEXT_LENGTH,) int64, padded with PAD
    unknown: tuple[str, ...]  # words the model does not know, as the user wrote them
    truncated: bool  # the prompt had more than TEXT_LENGTH words


@dataclass(frozen=True)
class TextTokenizer:
    words: tuple[str, ...]  # the vocabulary, specials first

    @classmethod
    def build(cls) -> TextTokenizer:
        """The vocabulary of the current parser: every word it knows."""
        return cls((*SPECIALS, *sorted(known_words())))

    @property
    def size(self) -> int:
        return len(self.words)

    def encode(self, text: str) -> Encoded:
        index = self._index
        words = normalize(text)
        ids = [index.get(word, UNK) for word in words]
        unknown = tuple(dict.fromkeys(w for w, i in zip(words, ids, strict=True) if i == UNK))
        padded = np.full(TEXT_LENGTH, PAD, np.int64)
        kept = ids[:TEXT_LENGTH]
        padded[: len(kept)] = kept
        return Encoded(padded, unknown, len(ids) > TEXT_LENGTH)

    def decode(self, ids: np.ndarray) -> str:
        return " ".join(self.words[i] for i in ids if i != PAD)

    @cached_property
    def _index(self) -> dict[str, int]:
        return {word: i for i, word in enumerate(self.words)}
