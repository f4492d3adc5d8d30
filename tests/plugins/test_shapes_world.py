"""The Shapes world's scenes and renderer follow SHAPES_DOMAIN.md."""

from __future__ import annotations

import json
import math
from collections import Counter
from itertools import islice

import numpy as np
import pytest
from PIL import Image

from shapes_backend import world
from shapes_backend.scene import ObjectSpec, PromptSpec, Scene, SceneObject
from shapes_lab.dataset import stream, write_shard
from shapes_lab.render import render_array, unit_outline
from shapes_lab.sampler import SceneSampler
from studio.cli import main

# Width of each shape's drawing, as a share of its box side s (the spec's geometry).
WIDTH_SHARE = {
    "circle": 1.0,
    "square": 0.85,
    "triangle": 1.0,
    "diamond": 1.0,
    "star": math.cos(math.radians(18)),
    "heart": 1.0,
}
# Area as a share of s^2; the heart's is the shoelace area of its drawn outline.
AREA_SHARE = {
    "circle": math.pi / 4,
    "square": 0.85**2,
    "triangle": math.sqrt(3) / 4,
    "diamond": 0.5,
    "star": 10 * 0.5 * 0.5 * 0.225 * math.sin(math.radians(36)),
    "heart": abs(
        sum(
            x0 * y1 - x1 * y0
            for (x0, y0), (x1, y1) in zip(
                unit_outline("heart"),
                unit_outline("heart")[1:] + unit_outline("heart")[:1],
                strict=True,
            )
        )
    )
    / 2,
}


def lone(shape: str, side: int, color: str = "red", background: str = "black") -> Scene:
    x0 = (world.CANVAS - side) // 2
    obj = SceneObject(shape, color, side, x0, x0)
    return Scene("single", background, (obj,), PromptSpec((ObjectSpec(shape, color),)))


@pytest.mark.parametrize("shape", world.SHAPES)
@pytest.mark.parametrize("side", [11, 20, 32])
def test_shapes_have_the_spec_geometry_and_exact_colours(shape: str, side: int) -> None:
    scene = lone(shape, side)
    image = render_array(scene).astype(int)
    cx, cy = (int(c) for c in scene.objects[0].center)
    assert tuple(image[cy, cx]) == world.COLORS["red"]  # interior: exact palette colour
    assert tuple(image[0, 0]) == world.BACKGROUNDS["black"]  # background: exact
    red, black = np.array(world.COLORS["red"]), np.array(world.BACKGROUNDS["black"])
    alpha = ((image - black) @ (red - black)) / ((red - black) @ (red - black))
    columns = np.nonzero((alpha >= 0.5).any(axis=0))[0]
    width = columns[-1] - columns[0] + 1
    assert abs(width - WIDTH_SHARE[shape] * side) <= 1.5  # thin star tips fall under 0.5
    # The 4x grid puts each edge within 1/8 px of its true place: area within ~side / 2.
    assert alpha.sum() == pytest.approx(AREA_SHARE[shape] * side**2, rel=0.02, abs=side / 2)
    # Every pixel is a blend of the background and the object colour (anti-aliasing only).
    blend = black + np.clip(alpha, 0, 1)[..., None] * (red - black)
    assert np.abs(image - blend).max() <= 1.0


def test_scenes_are_laid_out_inside_apart_and_by_the_rules() -> None:
    sampler = SceneSampler(seed=3, pairs="any")
    for _ in range(3000):
        scene = sampler.realise(sampler.spec())
        spec = scene.spec
        assert world.MIN_OBJECTS <= len(scene.objects) <= world.MAX_OBJECTS
        assert len(scene.objects) == spec.object_count
        for i, a in enumerate(scene.objects):
            x0, y0, x1, y1 = a.bbox
            assert x0 >= 0 and y0 >= 0 and x1 <= world.CANVAS and y1 <= world.CANVAS
            for b in scene.objects[i + 1 :]:
                bx0, by0, bx1, by1 = b.bbox
                gap = max(bx0 - x1, x0 - bx1, by0 - y1, y0 - by1)
                assert gap >= world.MIN_GAP
        named = [o for o in spec.objects for _ in range(o.count)]
        for want, got in zip(named, scene.objects, strict=True):
            assert got.shape == want.shape
            assert want.color in (None, got.color)
            assert want.size in (None, got.size)
        if spec.place:
            assert world.place_of(*scene.objects[0].center) == spec.place
        if spec.relation:
            a, b = scene.objects[spec.relation.a], scene.objects[spec.relation.b]
            assert world.relation_holds(
                a.center, b.center, a.size_px, b.size_px, spec.relation.type
            )
        if spec.background:
            assert scene.background == spec.background


def test_every_kind_follows_its_rules() -> None:
    sampler = SceneSampler(seed=5)
    for _ in range(300):
        count = sampler.spec("count").objects
        assert len(count) == 1 and 2 <= count[0].count <= 4 and count[0].color
        two = sampler.spec("two").objects
        assert len({o.shape for o in two}) == 2 and all(o.color is None for o in two)
        colors = sampler.spec("colors").objects
        assert len({o.color for o in colors}) == 2 and None not in {o.color for o in colors}
        size = sampler.spec("size").objects
        assert len({o.size for o in size}) == 2 and all(o.color for o in size)
        place = sampler.spec("place")
        assert place.place in world.PLACES and len(place.objects) == 1


def test_held_out_pairs_never_appear_in_training_streams() -> None:
    pairs = Counter()
    for scene in islice(SceneSampler(seed=11), 20_000):
        pairs.update((o.color, o.shape) for o in scene.objects)
    assert not world.HELD_OUT & set(pairs)
    assert len(pairs) == len(world.COLORS) * len(world.SHAPES) - len(world.HELD_OUT)
    held = SceneSampler(seed=1, pairs="held_out")
    for _ in range(500):
        scene = held.realise(held.spec())
        assert all((o.color, o.shape) in world.HELD_OUT for o in scene.objects)


def test_the_stream_is_seeded_and_varied() -> None:
    def first_50(seed: int) -> list[tuple[str, bytes]]:
        return [(s.caption, image.tobytes()) for s, image in islice(stream(seed), 50)]

    first, again, other = first_50(7), first_50(7), first_50(8)
    assert first == again and first != other
    assert len({caption for caption, _ in first}) == 50
    kinds = Counter(s.kind for s, _ in islice(stream(1), 700))
    assert set(kinds) == set(world.KINDS)


def test_write_shard_and_the_data_render_command(tmp_path, capsys) -> None:
    out = tmp_path / "shard"
    code = main(
        [
            "data",
            "render",
            "--count",
            "25",
            "--seed",
            "4",
            "--out",
            str(out),
            "--kind",
            "relation",
            "--json",
        ]
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out)["count"] == 25
    rows = [json.loads(line) for line in (out / "annotations.jsonl").read_text().splitlines()]
    assert len(rows) == 25
    row = rows[0]
    assert set(row) >= {"image", "caption", "kind", "background", "objects", "relation"}
    assert row["kind"] == "relation" and row["relation"]["type"] in world.RELATIONS
    obj = row["objects"][0]
    assert set(obj) == {"shape", "color", "size", "size_px", "center", "bbox"}
    x0, y0, x1, y1 = obj["bbox"]
    assert x1 - x0 == obj["size_px"] and obj["center"] == [(x0 + x1) / 2, (y0 + y1) / 2]
    with Image.open(out / row["image"]) as image:
        assert image.size == (64, 64) and image.mode == "RGB"
    assert (
        write_shard(tmp_path / "again", 25, 4, kinds=["relation"]).read_text()
        == (out / "annotations.jsonl").read_text()
    )
