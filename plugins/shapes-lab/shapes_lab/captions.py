"""Captions for Shapes scenes: one `PromptSpec`, written many different ways.

A caption names exactly what its spec names, no more and no less, so the parser reads it
back into the same spec. The variety (synonyms, number words or digits, articles or none,
adjective order, fillers, background and place phrases, case, punctuation) is there so a
model trained on captions learns the words rather than a handful of templates.
"""

from __future__ import annotations

import random

from shapes_backend import language, world
from shapes_backend.scene import ObjectSpec, PromptSpec


def write_caption(spec: PromptSpec, rng: random.Random) -> str:
    """One caption for `spec`, drawn with `rng`."""
    filler = _filler(spec, rng) if rng.random() < 0.35 else ""
    front = ""  # at most one phrase opens the caption, and only when no filler does
    back: list[str] = []
    if spec.place is not None:
        place = _place(spec.place, rng)
        if filler or rng.random() < 0.75:
            back.append(place)
        else:
            front = place + ","
    if spec.background is not None:
        if filler or front or rng.random() < 0.7:
            phrase = _background(spec.background, language.BACKGROUND_END_TEMPLATES, rng)
            if phrase[0].isalpha() and rng.random() < 0.3:
                back.insert(0, phrase)  # "... on black in the top left corner"
            else:
                back.append(phrase)
        else:
            front = _background(spec.background, language.BACKGROUND_START_TEMPLATES, rng)
    text = " ".join(filter(None, (filler, front, _body(spec, rng), *back)))
    return _finish(text.replace(" ,", ",").replace(" .", "."), rng)


def caption_variants(spec: PromptSpec, rng: random.Random, n: int) -> list[str]:
    """`n` captions for `spec`, distinct where the spec leaves room for that many."""
    captions: list[str] = []
    seen: set[str] = set()
    for _ in range(n * 20):
        if len(captions) == n:
            break
        caption = write_caption(spec, rng)
        if caption not in seen:
            seen.add(caption)
            captions.append(caption)
    while len(captions) < n:  # a spec with little to vary: repeats rather than fewer
        captions.append(write_caption(spec, rng))
    return captions


def _body(spec: PromptSpec, rng: random.Random) -> str:
    """The objects, joined by the relation phrase or by connectors."""
    phrases = [_object_phrase(o, rng) for o in spec.objects]
    relation = spec.relation
    if relation is None or not _valid_pair(relation.a, relation.b, len(phrases)):
        return _join(phrases, rng)
    lead = rng.choice(language.RELATION_LEADS) + " " if rng.random() < 0.15 else ""
    comma = "," if lead and rng.random() < 0.5 else ""
    word = rng.choice(language.RELATION_PHRASES[relation.type])
    pair = f"{phrases[relation.a]}{comma} {lead}{word} {phrases[relation.b]}"
    rest = [p for i, p in enumerate(phrases) if i not in (relation.a, relation.b)]
    return _join([pair, *rest], rng)


def _valid_pair(a: int, b: int, n: int) -> bool:
    return a != b and 0 <= a < n and 0 <= b < n


def _join(phrases: list[str], rng: random.Random) -> str:
    text = phrases[0] if phrases else ""
    for phrase in phrases[1:]:
        connector = rng.choice(language.CONNECTORS)
        text += (connector if connector.startswith(",") else " " + connector) + " " + phrase
    return text


def _object_phrase(obj: ObjectSpec, rng: random.Random) -> str:
    """'a big red circle', 'three yellow hearts', 'two discs in blue', 'star'."""
    adjectives = []
    if obj.size is not None:
        adjectives.append(rng.choice(world.SIZE_WORDS[obj.size]))
    post_color = obj.color is not None and rng.random() < 0.08
    if obj.color is not None and not post_color:
        adjectives.append(rng.choice(world.COLOR_WORDS[obj.color]))
    if len(adjectives) == 2 and rng.random() < 0.3:
        adjectives.reverse()  # "red big circle" as well as "big red circle"
    noun = rng.choice(world.SHAPE_WORDS[obj.shape])
    if obj.count != 1:
        noun = rng.choice(language.plural_forms(noun))
    words = [*adjectives, noun]
    if post_color:
        words += [rng.choice(language.POST_COLOR_LEADS), obj.color or ""]
    determiner = _determiner(obj.count, words[0], rng)
    return " ".join(filter(None, (determiner, *words)))


def _determiner(count: int, next_word: str, rng: random.Random) -> str:
    if count == 1:
        choice = rng.choices(("article", "one", "the", "", "1"), (12, 2, 2, 3, 1))[0]
        return language.article_for(next_word) if choice == "article" else choice
    number = rng.choice(world.NUMBER_WORDS.get(count, (str(count),)))
    if rng.random() < 0.1 and not number.startswith("a "):
        return f"{rng.choice(language.COUNT_ADVERBS)} {number}"
    return number


def _filler(spec: PromptSpec, rng: random.Random) -> str:
    first_count = spec.objects[0].count if spec.objects else 1
    if first_count > 1 and rng.random() < 0.2:
        return rng.choice(language.PLURAL_FILLER_PREFIXES)
    return rng.choice(language.FILLER_PREFIXES)


def _place(place: str, rng: random.Random) -> str:
    phrase = rng.choice(language.PLACE_PHRASES[place])
    if language.takes_place_suffix(phrase) and rng.random() < 0.15:
        phrase += " " + rng.choice(language.PLACE_SUFFIXES)
    return phrase


def _background(background: str, templates: tuple[str, ...], rng: random.Random) -> str:
    word = rng.choice(world.BACKGROUND_WORDS[background])
    return rng.choice(templates).format(bg=word)


def _finish(text: str, rng: random.Random) -> str:
    """Case and final punctuation, varied the way people type."""
    style = rng.choices(("lower", "sentence", "title", "upper"), (70, 18, 7, 5))[0]
    if style == "sentence":
        text = text[:1].upper() + text[1:]
    elif style == "title":
        text = text.title()
    elif style == "upper":
        text = text.upper()
    if not text.endswith("."):
        text += rng.choices(("", ".", "!"), (6, 3, 1))[0]
    return text
