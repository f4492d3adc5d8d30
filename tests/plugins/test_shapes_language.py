"""Captions and the prompt parser of the Shapes world: round trip, examples, hostile text."""

from __future__ import annotations

import random

import pytest

from shapes_backend import world
from shapes_backend.parser import infer_kind, known_words, normalize, parse_prompt
from shapes_backend.scene import ObjectSpec, PromptSpec, RelationSpec
from shapes_lab.captions import caption_variants, write_caption


def _background(rng: random.Random) -> str | None:
    return rng.choice((None, *world.BACKGROUNDS))


def _colors(rng: random.Random, n: int) -> list[str]:
    return rng.sample(list(world.COLORS), n)


def random_spec(kind: str, rng: random.Random) -> PromptSpec:
    """A random spec of one scene kind, following the kind rules of SHAPES_DOMAIN.md."""
    shape, color = rng.choice(world.SHAPES), rng.choice(list(world.COLORS))
    relation = place = None
    if kind == "single":
        size = rng.choice((None, *world.SIZES))
        objects: tuple[ObjectSpec, ...] = (ObjectSpec(shape, color, size),)
    elif kind == "count":
        objects = (ObjectSpec(shape, color, count=rng.randint(2, 4)),)
    elif kind == "two":
        objects = tuple(ObjectSpec(s) for s in rng.sample(world.SHAPES, 2))
    elif kind == "colors":
        objects = tuple(ObjectSpec(rng.choice(world.SHAPES), c) for c in _colors(rng, 2))
    elif kind == "relation":
        colors = _colors(rng, 2) if rng.random() < 0.5 else [None, None]
        objects = tuple(ObjectSpec(rng.choice(world.SHAPES), c) for c in colors)
        relation = RelationSpec(0, 1, rng.choice(world.RELATIONS))
    elif kind == "size":
        sizes = rng.sample(list(world.SIZES), 2)
        objects = tuple(
            ObjectSpec(rng.choice(world.SHAPES), c, s)
            for c, s in zip(_colors(rng, 2), sizes, strict=True)
        )
    else:
        assert kind == "place"
        objects = (ObjectSpec(shape, color),)
        place = rng.choice(world.PLACES)
    return PromptSpec(objects, _background(rng), relation, place, kind)


def test_round_trip_every_kind() -> None:
    rng = random.Random(1234)
    failures = []
    total = 7000
    for i in range(total):
        spec = random_spec(world.KINDS[i % len(world.KINDS)], rng)
        caption = write_caption(spec, rng)
        parsed = parse_prompt(caption)
        if parsed != spec or parsed.unknown_words:
            failures.append((caption, spec, parsed))
    assert not failures, f"{len(failures)}/{total} failed, e.g. {failures[:3]}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a red circle", PromptSpec((ObjectSpec("circle", "red"),), kind="single")),
        (
            "a big blue star on a black background",
            PromptSpec((ObjectSpec("star", "blue", "large"),), "black", kind="single"),
        ),
        (
            "three yellow hearts",
            PromptSpec((ObjectSpec("heart", "yellow", count=3),), kind="count"),
        ),
        ("2 green squares", PromptSpec((ObjectSpec("square", "green", count=2),), kind="count")),
        (
            "a pair of tiny red boxes",
            PromptSpec((ObjectSpec("square", "red", "small", 2),), kind="count"),
        ),
        (
            "a circle and a triangle",
            PromptSpec((ObjectSpec("circle"), ObjectSpec("triangle")), kind="two"),
        ),
        (
            "a red square and a blue circle",
            PromptSpec((ObjectSpec("square", "red"), ObjectSpec("circle", "blue")), kind="colors"),
        ),
        (
            "a pink diamond to the left of an orange star",
            PromptSpec(
                (ObjectSpec("diamond", "pink"), ObjectSpec("star", "orange")),
                relation=RelationSpec(0, 1, "left of"),
                kind="relation",
            ),
        ),
        (
            "a star above a heart",
            PromptSpec(
                (ObjectSpec("star"), ObjectSpec("heart")),
                relation=RelationSpec(0, 1, "above"),
                kind="relation",
            ),
        ),
        (
            "A Ball UNDERNEATH a rhombus!",
            PromptSpec(
                (ObjectSpec("circle"), ObjectSpec("diamond")),
                relation=RelationSpec(0, 1, "below"),
                kind="relation",
            ),
        ),
        (
            "a small purple circle and a large cyan square",
            PromptSpec(
                (ObjectSpec("circle", "purple", "small"), ObjectSpec("square", "cyan", "large")),
                kind="size",
            ),
        ),
        (
            "a green triangle in the top left corner",
            PromptSpec((ObjectSpec("triangle", "green"),), place="top left", kind="place"),
        ),
        (
            "Please draw a green triangle, top-left, against a grey backdrop.",
            PromptSpec((ObjectSpec("triangle", "green"),), "gray", place="top left", kind="place"),
        ),
        (
            "a red circle on the left",
            PromptSpec((ObjectSpec("circle", "red"),), place="left", kind="place"),
        ),
        (
            "a red circle on the left of a blue disc",
            PromptSpec(
                (ObjectSpec("circle", "red"), ObjectSpec("circle", "blue")),
                relation=RelationSpec(0, 1, "left of"),
                kind="relation",
            ),
        ),
        (
            "medium-sized pink rhombi on grey",
            PromptSpec((ObjectSpec("diamond", "pink", "medium", 2),), "gray", kind="count"),
        ),
    ],
)
def test_examples(text: str, expected: PromptSpec) -> None:
    assert parse_prompt(text) == expected


def test_unknown_words_reported_in_order() -> None:
    spec = parse_prompt("a red circle wearing a hat")
    assert spec.objects == (ObjectSpec("circle", "red"),)
    assert spec.unknown_words == ("wearing", "hat")
    assert parse_prompt("an image of exactly three stars, please").unknown_words == ()


def test_infer_kind_rules() -> None:
    circle, star = ObjectSpec("circle"), ObjectSpec("star", "red")
    assert infer_kind(PromptSpec(())) is None
    assert infer_kind(PromptSpec((circle,), place="top")) == "place"
    assert infer_kind(PromptSpec((circle, star), relation=RelationSpec(0, 1, "above"))) == (
        "relation"
    )
    assert infer_kind(PromptSpec((ObjectSpec("star", count=3),))) == "count"
    assert infer_kind(PromptSpec((star,))) == "single"
    assert infer_kind(PromptSpec((circle, ObjectSpec("heart")))) == "two"
    assert infer_kind(PromptSpec((star, ObjectSpec("heart", "blue")))) == "colors"
    assert infer_kind(PromptSpec((circle, star))) is None  # one coloured, one not
    assert infer_kind(PromptSpec((circle, star, ObjectSpec("heart")))) is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "!!!",
        "\x00\x01\x1b[31m\x7f",
        "🙂🔴⭐",
        "دائرة حمراء",
        "‮a red circle‬",
        "a" * 100_000,
        "red " * 25_000,
        "to the left of " * 5000,
        "\ud800 lone surrogate",
        "the the the",
        "of of",
        "circle" * 1000,
        "3 4 2 1",
        "above below",
        "on the left of",
    ],
)
def test_hostile_input_never_raises(text: str) -> None:
    spec = parse_prompt(text)
    assert isinstance(spec, PromptSpec)


def test_nonsense_has_no_objects() -> None:
    assert parse_prompt("colorless green ideas sleep furiously").objects == ()
    assert parse_prompt("🙂🔴⭐").objects == ()


def test_random_garbage_never_raises() -> None:
    rng = random.Random(7)
    vocabulary = [*known_words(), "zzz", "-", ",", "🙂", "\n", "3", "x"]
    for _ in range(2000):
        words = rng.choices(vocabulary, k=rng.randint(0, 30))
        parse_prompt(" ".join(words))
        parse_prompt("".join(chr(rng.randint(0, 0x10FFFF)) for _ in range(rng.randint(0, 40))))


def test_long_input_is_parsed_whole() -> None:
    text = "a big red circle to the left of a tiny blue box on a black background " * 1500
    spec = parse_prompt(text)  # ~100 KB (its speed is measured in bench/bench_shapes_data.py)
    assert len(spec.objects) == 3000


def test_normalize_and_known_words() -> None:
    assert normalize("A Top-Left, 3 RED stars!") == ["a", "top", "left", "3", "red", "stars"]
    words = known_words()
    assert {"a", "the", "picture", "grey", "rhombi", "boxes", "3", "beneath"} <= words
    assert "wearing" not in words


def test_captions_are_varied() -> None:
    rng = random.Random(3)
    spec = PromptSpec(
        (ObjectSpec("diamond", "pink"), ObjectSpec("star", "orange")),
        relation=RelationSpec(0, 1, "left of"),
        kind="relation",
    )
    assert len({write_caption(spec, rng) for _ in range(50)}) >= 20
    variants = caption_variants(spec, rng, 10)
    assert len(variants) == 10 and len(set(variants)) == 10


def test_caption_names_nothing_more() -> None:
    rng = random.Random(5)
    color_words = {w for words in world.COLOR_WORDS.values() for w in words}
    size_words = {w for words in world.SIZE_WORDS.values() for w in words} - {"medium-sized"}
    background_words = {w for words in world.BACKGROUND_WORDS.values() for w in words}
    for _ in range(300):
        spec = random_spec("two", rng)
        words = set(normalize(write_caption(spec, rng)))
        assert not words & color_words
        assert not words & size_words
        if spec.background is None:
            assert not words & background_words
        assert not words & {"above", "below", "under", "corner", "top", "bottom", "left", "right"}
