"""The text tokenizer: one token per word the Shapes parser knows, the rest unknown.

Each word also comes with the earlier words of its noun phrase (`bindings`): "triangle"
in "a cyan triangle and a purple star" carries "a cyan". The transformer adds their
embeddings to the word's own, so which colour goes with which shape is in the tokens
themselves rather than left for attention to find; a model trained on text alone
otherwise draws the words' seen pairs (a cyan star and a purple triangle).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from plugins.shapes.parser import known_words, normalize, object_of_words

PAD, UNK = 0, 1
SPECIALS = ("<pad>", "<unk>")
TEXT_LENGTH = 32  # words a prompt may use; captions of this world need fewer than 25
BOUND = 4  # earlier words of its phrase a word carries ("three small red" + noun)


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

    def bindings(self, ids: np.ndarray) -> np.ndarray:
        """(..., T) word ids -> (..., T, BOUND): for each word, the ids of the words before
        it that name the same object (the last BOUND of them), PAD elsewhere."""
        rows = ids.reshape(-1, ids.shape[-1])
        bound = np.stack([self._row_bindings(tuple(row.tolist())) for row in rows])
        return bound.reshape(*ids.shape, BOUND)

    @lru_cache(maxsize=4096)  # noqa: B019 (one tokenizer per model, kept while it is)
    def _row_bindings(self, row: tuple[int, ...]) -> np.ndarray:
        bound = np.full((len(row), BOUND), PAD, np.int64)
        used = [i for i in row if i != PAD]
        owners = object_of_words([self.words[i] for i in used])
        for position, owner in enumerate(owners):
            if owner is None:
                continue
            before = [used[q] for q in range(position) if owners[q] == owner][-BOUND:]
            bound[position, : len(before)] = before
        bound.flags.writeable = False
        return bound

    @cached_property
    def _index(self) -> dict[str, int]:
        return {word: i for i, word in enumerate(self.words)}
