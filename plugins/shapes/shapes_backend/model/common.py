"""What both runtimes (PyTorch and ONNX Runtime) share: results, progress, word checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from shapes_backend import language, world
from shapes_backend.model import image_tokens as it
from shapes_backend.model.text_tokens import PAD, UNK, Encoded, TextTokenizer
from shapes_backend.parser import parse_prompt
from shapes_backend.scene import ObjectSpec

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
    phrases: bool = True  # each object's shape is drawn under its own noun phrase (Phrases)


@dataclass(frozen=True)
class ImagePrompt:
    """What an image prompt gives the sampler (DALL-E's image prompts): the input picture
    at the model's size and either a mask (completion and repainting: masked patches are
    sampled, the others kept) or, without one, a `strength` (variations: the share of
    tokens each candidate redraws; 1 = a fresh sample)."""

    image: np.ndarray  # (64, 64, 3) uint8: the input, scaled to the model's canvas
    mask: np.ndarray | None = None  # (64, 64) float in [0, 1]: 1 = repaint, 0 = keep
    strength: float = 1.0  # without a mask: how much of the image each candidate redraws


# How much an image's log-likelihood (nats, `Generated.log_likelihoods`) weighs in its
# ranking score beside the ranker's cosine. Chosen on bench_ranker.py's tuning prompts,
# not the eval set (MODEL.md): 0.01 - 0.03 all keep within 0.02 of one another.
LIKELIHOOD_WEIGHT = 0.02


@dataclass
class Generated:
    images: np.ndarray  # (n, 64, 64, 3) uint8, best first when ranked
    scores: np.ndarray  # (n,) ranking scores (`ranked`), or zeros without ranking
    log_likelihoods: np.ndarray  # (n,) of each image's tokens, as sampled (`sample_tokens`)
    unknown_words: tuple[str, ...]
    indices: np.ndarray | None = None  # (n,) each image's place in the batch (None: in order)

    @property
    def order(self) -> np.ndarray:
        """Each image's index as sampled: image i drew from seed + i (`ImageDraws`)."""
        return np.arange(len(self.images)) if self.indices is None else self.indices

    def ranked(self, cosines: np.ndarray) -> Generated:
        """Best first by the ranker's `cosines` of prompt and image plus the images' own
        log-likelihoods, weighed by LIKELIHOOD_WEIGHT. The ranker reads the prompt as a
        whole; the likelihood penalises slips (a shape broken into fragments, a piece
        astray), which the sampler made at odds with its own model."""
        scores = (cosines + LIKELIHOOD_WEIGHT * self.log_likelihoods).astype(np.float32)
        order = np.argsort(-scores, kind="stable")
        return Generated(
            self.images[order],
            scores[order],
            self.log_likelihoods[order],
            self.unknown_words,
            self.order[order],
        )

    def distinct(self, unchanged: list[np.ndarray]) -> Generated:
        """The same images, those equal to one of `unchanged` (an edit that changed
        nothing) or to an image before them moved to the end, each group in its order:
        the images shown first are ones the user has not seen yet."""
        seen = {image.tobytes() for image in unchanged}
        fresh, repeated = [], []
        for i, image in enumerate(self.images):
            key = image.tobytes()
            (repeated if key in seen else fresh).append(i)
            seen.add(key)
        order = np.array(fresh + repeated, np.int64)
        return Generated(
            self.images[order],
            self.scores[order],
            self.log_likelihoods[order],
            self.unknown_words,
            self.order[order],
        )


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


@dataclass(frozen=True)
class Phrases:
    """A prompt's objects, each under its own noun phrase without its colour ("a cyan
    triangle and a small purple star" -> "a triangle", "a small star"), keyed by the
    colour the prompt gives it.

    The transformer does not bind colours to shapes in a prompt that names two objects:
    it draws the right colours and the right shapes, but pairs them as it likes (e.g. a
    cyan star and a purple triangle), and never pairs a colour with a shape it has not
    seen together. So the sampler runs each phrase as one more prompt over the same image
    tokens, and draws a patch's mask code (its shape) under the phrase of the colour the
    patch was given, while colours, places and sizes still come from the whole prompt.
    The phrase leaves the colour out: the patch's kind already fixes it, and naming it
    pulls the shape toward those drawn in that colour in training (held-out pairs most).
    In the spirit of Feng et al., "Training-Free Structured Diffusion Guidance" (2023),
    which encodes a parser's noun phrases apart to bind attributes."""

    ids: np.ndarray  # (objects, T) word ids of each object's phrase
    colors: tuple[int, ...]  # the colour (world.COLORS index) the prompt gives each object

    @classmethod
    def of(cls, tokenizer: TextTokenizer, prompt: str) -> Phrases | None:
        """The phrases of a prompt naming two or more objects, each in a colour of its
        own; None otherwise (nothing to bind, or the colours cannot tell objects apart)."""
        objects = parse_prompt(prompt).objects
        colors = [o.color for o in objects]
        if len(objects) < 2 or None in colors or len(set(colors)) < len(colors):
            return None
        names = list(world.COLORS)
        return cls(
            np.stack([tokenizer.encode(noun_phrase(replace(o, color=None))).ids for o in objects]),
            tuple(names.index(c) for c in colors),  # type: ignore[arg-type]
        )

    def prompt_of_kinds(self, first_phrase: int) -> np.ndarray:
        """For each patch kind, the prompt (group) its mask code is drawn under: the
        phrase of its colour (groups from `first_phrase` on), else the whole prompt (0)."""
        groups = np.zeros(it.FIRST_MASK + it.N_COLORS, np.int64)
        for i, color in enumerate(self.colors):
            groups[it.FIRST_MASK + color] = first_phrase + i
        return groups


def prompt_groups(
    ids: np.ndarray, options: SamplingOptions, phrases: Phrases | None
) -> tuple[np.ndarray, np.ndarray]:
    """The prompts the image tokens run under, n rows each, as (groups, T) word ids: the
    prompt; with guidance, the empty prompt; with `options.phrases`, each object's phrase.
    And for each patch kind, the group its mask code is drawn under (0: the prompt)."""
    prompts = [ids] + [np.full_like(ids, PAD)] * (options.guidance != 1.0)
    prompt_of_kind = np.zeros(it.FIRST_MASK + it.N_COLORS, np.int64)
    if phrases is not None and options.phrases:
        prompt_of_kind = phrases.prompt_of_kinds(len(prompts))
        prompts += list(phrases.ids)
    return np.stack(prompts), prompt_of_kind


def noun_phrase(obj: ObjectSpec) -> str:
    """The plain phrase for one object: "a small red circle", "three blue stars"."""
    noun = world.SHAPE_WORDS[obj.shape][0]
    if obj.count != 1:
        noun = language.plural_forms(noun)[0]
    words = [word for word in (obj.size, obj.color) if word] + [noun]
    count = world.NUMBER_WORDS.get(obj.count, (str(obj.count),))[0]
    return " ".join([language.article_for(words[0]) if obj.count == 1 else count, *words])


class ImageDraws:
    """Each image's own random stream, seeded with the request's seed + its index: image
    i is the same alone, in any batch, or on another machine."""

    def __init__(self, seed: int, n: int) -> None:
        self._streams = [np.random.default_rng((seed + i) % 2**32) for i in range(n)]

    def uniform(self, images: np.ndarray) -> np.ndarray:
        """One draw in [0, 1) for each of `images`, from its own stream."""
        return np.array([self._streams[i].random() for i in images])
