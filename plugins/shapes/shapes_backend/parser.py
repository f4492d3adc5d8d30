"""Free prompt text -> `PromptSpec`: what the prompt names in the Shapes world.

Tolerant by design: words are matched against a phrase trie (longest phrase first), words
the parser does not know are skipped and reported, and no input makes it raise. One pass
over the words, each trying at most the deepest phrase: linear in the text's length.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from shapes_backend import language, world
from shapes_backend.scene import ObjectSpec, PromptSpec, RelationSpec

# What a matched phrase means: (tag, value). Values are canonical names or counts.
ARTICLE, NUMBER, ONE, ONES, SIZE, COLOR, POST_COLOR = (
    "article",
    "number",
    "one",
    "ones",
    "size",
    "color",
    "post_color",
)
SHAPE, SHAPES, RELATION, PLACE, BACKGROUND, FILLER = (
    "shape",
    "shapes",
    "relation",
    "place",
    "background",
    "filler",
)
Lexeme = tuple[str, Any]

_END = ""  # trie key of a node's meaning; never a word, as words are non-empty
_WORD = re.compile(r"[^\W_]+")  # letters and digits of any script; "_" splits like "-"


def normalize(text: str) -> list[str]:
    """The lowercase words the parser works on: punctuation dropped, hyphens split, digits
    kept. "A Top-Left, 3 RED stars!" -> ["a", "top", "left", "3", "red", "stars"]."""
    if not isinstance(text, str):  # be forgiving with callers too
        text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return _WORD.findall(text.lower())


def word_starts(text: str) -> list[int]:
    """Where in `text` each word of `normalize(text)` starts. Lowered a character at a
    time, as lowering may lengthen one ("İ"), with each index mapped back."""
    lowered: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        low = char.lower()
        lowered.append(low)
        origin += [index] * len(low)
    return [origin[match.start()] for match in _WORD.finditer("".join(lowered))]


def _phrases() -> Iterable[tuple[str, Lexeme]]:
    """Every phrase the parser knows, with its meaning; the meaningful ones first."""
    for word in language.ARTICLES:
        yield word, (ARTICLE, 1)
    yield "one", (ONE, 1)
    yield "ones", (ONES, None)
    for table in (world.NUMBER_WORDS, language.EXTRA_NUMBER_WORDS):
        for count, words in table.items():
            for word in words:
                if word not in (*language.ARTICLES, "one"):
                    yield word, (NUMBER, count)
    for name, words in world.SIZE_WORDS.items():
        yield from ((word, (SIZE, name)) for word in words)
    for name, words in world.COLOR_WORDS.items():
        for word in words:
            yield word, (COLOR, name)
            yield from (
                (f"{lead} {word}", (POST_COLOR, name)) for lead in language.POST_COLOR_LEADS
            )
    for name, words in world.SHAPE_WORDS.items():
        for word in (*words, *language.EXTRA_SHAPE_WORDS.get(name, ())):
            yield word, (SHAPE, name)
            yield from ((plural, (SHAPES, name)) for plural in language.plural_forms(word))
    for name, phrases in language.RELATION_PHRASES.items():
        yield from ((phrase, (RELATION, name)) for phrase in phrases)
    for table in (language.PLACE_PHRASES, language.PARSER_PLACE_PHRASES):
        for name, phrases in table.items():
            for phrase in phrases:
                yield phrase, (PLACE, name)
                if language.takes_place_suffix(phrase):
                    for suffix in language.PLACE_SUFFIXES:
                        yield f"{phrase} {suffix}", (PLACE, name)
    for phrase, name in language.background_phrases():
        yield phrase, (BACKGROUND, name)
    for phrase in (
        *language.FILLER_PREFIXES,
        *language.PLURAL_FILLER_PREFIXES,
        *language.CONNECTORS,
        *language.RELATION_LEADS,
        *language.COUNT_ADVERBS,
        *language.FILLER_WORDS,
    ):
        yield phrase, (FILLER, None)


@cache
def _trie() -> dict[str, Any]:
    """The phrase trie: nested dicts by word, a node's meaning under `_END`. Every word of
    every phrase is also known on its own (as filler when it means nothing alone)."""
    root: dict[str, Any] = {}
    for phrase, lexeme in _phrases():
        words = normalize(phrase)
        node = root
        for word in words:
            node = node.setdefault(word, {})
        old = node.get(_END)
        if old is not None and old != lexeme and old[0] != FILLER and lexeme[0] != FILLER:
            raise ValueError(f"phrase {phrase!r} means both {old} and {lexeme}")
        node.setdefault(_END, lexeme)  # the first (meaningful) reading wins over filler
    for word in _all_words(root):
        root.setdefault(word, {}).setdefault(_END, (FILLER, None))
    return root


def _all_words(node: dict[str, Any]) -> set[str]:
    words: set[str] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        for key, child in current.items():
            if key != _END:
                words.add(key)
                stack.append(child)
    return words


@cache
def known_words() -> frozenset[str]:
    """Every word the parser understands, fillers included (normalized, lowercase)."""
    return frozenset(_all_words(_trie()))


def _match(words: list[str], start: int) -> tuple[Lexeme | None, int]:
    """The longest known phrase at `start`: its meaning and its length in words."""
    node = _trie()
    best: Lexeme | None = None
    length = 0
    for end in range(start, len(words)):
        node = node.get(words[end])
        if node is None:
            break
        lexeme = node.get(_END)
        if lexeme is not None:
            best, length = lexeme, end - start + 1
    return best, length


@dataclass
class _Object:
    shape: str
    color: str | None
    size: str | None
    count: int


@dataclass
class _Pending:
    """Words of a noun phrase read so far, waiting for its noun."""

    determined: bool = False  # began with an article or a number
    count: int | None = None  # None: an article or nothing, so the noun's number decides
    size: str | None = None
    color: str | None = None

    def has_adjectives(self) -> bool:
        return self.size is not None or self.color is not None


class _Reader:
    """Reads lexemes in order and builds the spec; the grammar lives in `feed`."""

    def __init__(self) -> None:
        self.objects: list[_Object] = []
        self.pending = _Pending()
        self.relation: tuple[str, int] | None = None  # type, objects named before it
        self.place: str | None = None
        self.background: str | None = None

    def feed(self, lexeme: Lexeme) -> None:
        tag, value = lexeme
        if tag == ARTICLE:
            self.pending = _Pending(determined=True)  # a determiner starts a noun phrase
        elif tag == NUMBER:
            self.pending = _Pending(determined=True, count=value)
        elif tag in (ONE, ONES):
            self._one(plural=tag == ONES)
        elif tag == SIZE:
            self.pending.size = value
        elif tag == COLOR:
            self.pending.color = value
        elif tag == POST_COLOR:
            self._post_color(value)
        elif tag in (SHAPE, SHAPES):
            self._noun(value, plural=tag == SHAPES)
        elif tag == RELATION:
            if self.relation is None:
                self.relation = (value, len(self.objects))
        elif tag == PLACE:
            self.place = self.place or value
        elif tag == BACKGROUND:
            self.background = self.background or value

    def _noun(self, shape: str, plural: bool) -> None:
        count = self.pending.count
        if count is None:
            count = 2 if plural else 1  # a bare plural ("some stars") asks for at least two
        self.objects.append(_Object(shape, self.pending.color, self.pending.size, count))
        self.pending = _Pending()

    def _one(self, plural: bool) -> None:
        """The word "one": a count ("one star"), or after adjectives the last noun again
        ("a red star and a blue one")."""
        if self.pending.has_adjectives() and self.objects:
            self._noun(self.objects[-1].shape, plural)
        elif not plural:
            self.pending = _Pending(determined=True, count=1)

    def _post_color(self, color: str) -> None:
        """A colour after its noun ("a star in red") goes to the object just named."""
        if self.objects and self.objects[-1].color is None and not self.pending.has_adjectives():
            self.objects[-1].color = color
        else:
            self.pending.color = color

    def spec(self, unknown: list[str]) -> PromptSpec:
        self._attach_trailing_adjectives()
        objects = tuple(ObjectSpec(o.shape, o.color, o.size, o.count) for o in self.objects)
        relation = None
        if self.relation is not None and 0 < self.relation[1] < len(objects):
            b = self.relation[1]
            relation = RelationSpec(b - 1, b, self.relation[0])
        spec = PromptSpec(
            objects=objects,
            background=self.background,
            relation=relation,
            place=self.place,
            unknown_words=tuple(unknown),
        )
        return replace(spec, kind=infer_kind(spec))

    def _attach_trailing_adjectives(self) -> None:
        """Adjectives left at the end with no determiner of their own ("a circle that is
        red") describe the last object, where it leaves them open."""
        pending = self.pending
        if pending.determined or not self.objects:
            return
        last = self.objects[-1]
        last.color = last.color or pending.color
        last.size = last.size or pending.size


def parse_prompt(text: str) -> PromptSpec:
    """What a prompt names, as a `PromptSpec` (kind inferred). Never raises: words it does
    not know are skipped and listed in `unknown_words`; nonsense gives no objects."""
    words = normalize(text)
    reader = _Reader()
    unknown: list[str] = []
    position = 0
    while position < len(words):
        lexeme, length = _match(words, position)
        if lexeme is None:
            unknown.append(words[position])
            position += 1
        else:
            reader.feed(lexeme)
            position += length
    return reader.spec(unknown)


def infer_kind(spec: PromptSpec) -> str | None:
    """The scene kind (world.KINDS) a spec belongs to, or None when it fits none."""
    objects = spec.objects
    if not objects:
        return None
    if spec.place is not None:
        return "place"
    if spec.relation is not None:
        return "relation"
    if len(objects) == 1:
        return "count" if objects[0].count >= 2 else "single"
    if len(objects) != 2 or any(o.count != 1 for o in objects):
        return None
    if all(o.size is not None for o in objects):
        return "size"
    if all(o.color is not None for o in objects):
        return "colors"
    if all(o.color is None for o in objects):
        return "two"
    return None
