"""Phrase tables of the Shapes world, shared by the caption writer and the prompt parser.

The writer picks from these tables; the parser understands every phrase here (plus a few
parser-only extras), so every caption the writer can produce parses back. Phrases are
written naturally (hyphens, mixed forms); the parser normalizes them like user text.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from shapes_backend import world

# Openings a caption may start with; they name nothing.
FILLER_PREFIXES: Final = (
    "a picture of",
    "an image of",
    "a drawing of",
    "a photo of",
    "an illustration of",
    "a render of",
    "a rendering of",
    "a sketch of",
    "a scene with",
    "an image with",
    "a picture with",
    "a picture showing",
    "an image showing",
    "picture of",
    "image of",
    "please draw",
    "draw",
    "draw me",
    "please draw me",
    "show me",
    "please show",
    "paint",
    "sketch",
    "render",
    "generate",
    "create",
    "make",
    "i want",
    "i would like",
    "can you draw",
    "there is",
)
PLURAL_FILLER_PREFIXES: Final = ("there are",)  # for a first object counted 2 or more

# Words that go before a count: "exactly three hearts".
COUNT_ADVERBS: Final = ("exactly", "only", "just")

# Joining two objects that have no relation between them.
CONNECTORS: Final = (
    "and",
    "and",
    "and",
    ", and",
    "plus",
    "as well as",
    "along with",
    "together with",
    "with",
)

# Optional words before a relation phrase: "a star that is above a heart".
RELATION_LEADS: Final = (
    "that is",
    "which is",
    "placed",
    "positioned",
    "located",
    "sitting",
    "directly",
    "just",
)

RELATION_PHRASES: Final[dict[str, tuple[str, ...]]] = {
    "left of": (
        "to the left of",
        "left of",
        "on the left of",
        "on the left side of",
        "to the left side of",
        "at the left of",
    ),
    "right of": (
        "to the right of",
        "right of",
        "on the right of",
        "on the right side of",
        "to the right side of",
        "at the right of",
    ),
    "above": ("above", "over", "on top of", "atop", "higher than"),
    "below": ("below", "under", "beneath", "underneath", "lower than"),
}

_VERTICAL: Final = {"top": ("top", "upper"), "bottom": ("bottom", "lower")}


def _corner_phrases(vertical: str, horizontal: str) -> Iterator[str]:
    for v in _VERTICAL[vertical]:
        yield from (
            f"in the {v} {horizontal} corner",
            f"in the {v}-{horizontal} corner",
            f"at the {v} {horizontal}",
            f"at the {v}-{horizontal}",
            f"in the {v} {horizontal}",
            f"near the {v} {horizontal} corner",
            f"{v} {horizontal} corner",
            f"{v}-{horizontal}",
        )


def _edge_phrases(edge: str) -> tuple[str, ...]:
    if edge in _VERTICAL:
        return (
            f"at the {edge}",
            f"in the {edge}",
            f"along the {edge}",
            f"near the {edge}",
            f"at the {edge} edge",
            f"at the {edge} center",
            f"in the {edge} middle",
            f"{edge} center",
            f"{edge}-center",
        )
    return (
        f"on the {edge}",
        f"at the {edge}",
        f"on the {edge} side",
        f"on the {edge}-hand side",
        f"at the {edge} edge",
        f"near the {edge} edge",
        f"center {edge}",
        f"middle {edge}",
    )


def _place_phrases() -> dict[str, tuple[str, ...]]:
    phrases: dict[str, tuple[str, ...]] = {}
    for place in world.PLACES:
        words = place.split()
        if len(words) == 2:
            phrases[place] = tuple(_corner_phrases(words[0], words[1]))
        elif place == "center":
            phrases[place] = (
                "in the center",
                "in the centre",
                "in the middle",
                "at the center",
                "at the centre",
                "centered",
                "in the very center",
                "center",
            )
        else:
            phrases[place] = _edge_phrases(place)
    return phrases


# Canonical place (world.PLACES) -> phrases a caption may use.
PLACE_PHRASES: Final = _place_phrases()

# Understood but never written: too easily misread by a reader ("to the left" vs "to the
# left of X"), or too terse to read well.
PARSER_PLACE_PHRASES: Final[dict[str, tuple[str, ...]]] = {
    "left": ("to the left", "left side", "left-hand side"),
    "right": ("to the right", "right side", "right-hand side"),
    "top": ("at top", "on top", "at the very top"),
    "bottom": ("at bottom", "at the very bottom"),
    "center": ("centre", "middle", "centred", "in the centre", "in middle"),
}

# "in the top left corner" may go on: "... of the image".
PLACE_SUFFIXES: Final = (
    "of the image",
    "of the picture",
    "of the canvas",
    "of the frame",
    "of the scene",
)


def takes_place_suffix(phrase: str) -> bool:
    """Whether "of the image" reads well after a place phrase ("in the top", not "top")."""
    words = phrase.split()
    return len(words) >= 3 and words[1] == "the"


# Background phrases: "{lead} {bg} {noun}", "{bg}" being a world.BACKGROUND_WORDS word.
BACKGROUND_NOUNS: Final = ("background", "backdrop")
BACKGROUND_END_TEMPLATES: Final = (
    "on a {bg} background",
    "on a {bg} backdrop",
    "on {bg}",
    "against a {bg} background",
    "against a {bg} backdrop",
    "with a {bg} background",
    "over a {bg} background",
    "in front of a {bg} background",
    ", {bg} background",
    "on a plain {bg} background",
    "on the {bg} background",
    "on a solid {bg} background",
    ". background: {bg}",
)
BACKGROUND_START_TEMPLATES: Final = (
    "on a {bg} background,",
    "{bg} background:",
    "against a {bg} backdrop,",
    "on {bg}:",
    "a {bg} background with",
    "{bg} backdrop,",
)

_BG_LEADS: Final = ("", "on", "against", "with", "over", "upon", "in front of", "in", "behind")
_BG_ARTICLES: Final = ("", "a", "the")
_BG_MODIFIERS: Final = ("", "plain", "solid", "flat", "uniform")


def background_phrases() -> Iterator[tuple[str, str]]:
    """Every background phrase the parser understands, with its canonical background."""
    for name, words in world.BACKGROUND_WORDS.items():
        for bg in words:
            for lead in _BG_LEADS:
                if lead:
                    yield f"{lead} {bg}", name
                for article in _BG_ARTICLES:
                    for modifier in _BG_MODIFIERS:
                        for noun in (*BACKGROUND_NOUNS, "canvas"):
                            yield " ".join(filter(None, (lead, article, modifier, bg, noun))), name
            for noun in BACKGROUND_NOUNS:
                yield f"{noun} {bg}", name
                yield f"{noun} is {bg}", name


# Colour after the noun: "a circle in red", "a star colored blue".
POST_COLOR_LEADS: Final = ("in", "colored", "coloured", "painted")

# Counts the world never draws (above 4) are still read honestly: "five stars" is 5.
EXTRA_NUMBER_WORDS: Final[dict[int, tuple[str, ...]]] = {
    2: ("pair of", "a couple of", "couple of"),
    5: ("five", "5"),
    6: ("six", "6"),
    7: ("seven", "7"),
    8: ("eight", "8"),
    9: ("nine", "9"),
    10: ("ten", "10"),
}
ARTICLES: Final = ("a", "an")

# Extra shape words the parser accepts (never written).
EXTRA_SHAPE_WORDS: Final[dict[str, tuple[str, ...]]] = {"circle": ("disk",)}

# Words that name nothing but are common in prompts; known, so never reported unknown.
FILLER_WORDS: Final = frozenset(
    (
        "the",
        "some",
        "exactly",
        "only",
        "just",
        "with",
        "and",
        "plus",
        "of",
        "on",
        "in",
        "at",
        "to",
        "is",
        "are",
        "there",
        "please",
        "draw",
        "me",
        "show",
        "picture",
        "image",
        "photo",
        "drawing",
        "illustration",
        "render",
        "rendering",
        "sketch",
        "scene",
        "generate",
        "make",
        "create",
        "paint",
        "want",
        "would",
        "like",
        "can",
        "could",
        "you",
        "showing",
        "containing",
        "contains",
        "has",
        "have",
        "having",
        "as",
        "well",
        "along",
        "together",
        "also",
        "it",
        "its",
        "their",
        "that",
        "which",
        "this",
        "these",
        "those",
        "each",
        "both",
        "shape",
        "shapes",
        "object",
        "objects",
        "thing",
        "things",
        "colored",
        "coloured",
        "sized",
        "size",
        "side",
        "corner",
        "edge",
        "part",
        "half",
        "area",
        "region",
        "canvas",
        "frame",
        "background",
        "backdrop",
        "color",
        "colour",
        "placed",
        "located",
        "positioned",
        "sitting",
        "standing",
        "directly",
        "next",
        "near",
        "by",
        "single",
        "very",
        "i",
        "we",
        "let",
        "s",
        "plain",
        "solid",
        "flat",
        "uniform",
    )
)


def plural_forms(word: str) -> tuple[str, ...]:
    """Plurals of a shape word, the first being the one to prefer: box -> boxes."""
    if word == "rhombus":
        return ("rhombi", "rhombuses")
    if word.endswith(("s", "x", "sh", "ch")):
        return (word + "es",)
    return (word + "s",)


def article_for(word: str) -> str:
    """'a' or 'an' before a word (by its first letter, enough for this vocabulary)."""
    return "an" if word[:1].lower() in "aeiou" else "a"
