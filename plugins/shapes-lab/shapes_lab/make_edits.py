"""Write the fixed edit set (versioned; regenerate only with a new version).

    .venv/bin/python -m shapes_lab.make_edits \\
        --out plugins/shapes-lab/shapes_lab/edits-v1.jsonl

Each edit is drawn as its intended result first (a scene that satisfies a prompt), then
the source is made from it by undoing the edit (another shape or colour, an object
taken away, the bottom half emptied, another background). An edit is kept only when it
is fair: its prompt parses back into the spec it was written from; the judge passes both
the ground truth and the ideal edit (the source outside the mask, the ground truth
inside); the objects to keep lie outside every 8 x 8 patch the mask touches, and the
objects to change inside the mask.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np

from shapes_backend import world
from shapes_backend.parser import parse_prompt
from shapes_backend.scene import PromptSpec, Scene, SceneObject
from shapes_lab.captions import write_caption
from shapes_lab.edit_set import EDIT_KINDS, VARIATION, Edit, mask_pixels, write_edits
from shapes_lab.judge import Judge
from shapes_lab.render import render_array
from shapes_lab.sampler import HELD_OUT_KINDS, LayoutError, SceneSampler

VERSION = 1
SEED = 20261206
PER_KIND = 30
HELD_OUT_PER_KIND = 10
VARIATION_STRENGTH = 0.3
BOX_MARGIN = 2  # pixels around the object to repaint (replace, recolour)
ADD_MARGIN = 3  # pixels around the region where the new object belongs
HALF = world.CANVAS // 2
PATCH = 8
# The prompt kinds an edit's result is written in: those that name colours.
PROMPT_KINDS = HELD_OUT_KINDS
COMPLETE_KINDS = ("count", "colors", "relation", "size")
TRIES = 2000

# What a kind's maker returns: the result's spec, the result, the source, the mask and
# the indices (in the result) of the objects the edit draws.
Draft = tuple[PromptSpec, Scene, Scene, dict | None, tuple[int, ...]]


def touched_patches(mask: np.ndarray) -> np.ndarray:
    """Every pixel of each 8 x 8 patch the mask touches: what a patch model may redraw."""
    n = world.CANVAS // PATCH
    cells = mask.reshape(n, PATCH, n, PATCH).any(axis=(1, 3))
    return np.repeat(np.repeat(cells, PATCH, axis=0), PATCH, axis=1)


class EditMaker:
    """Draws fair edits of each kind from seeded random streams."""

    def __init__(self, seed: int, judge: Judge) -> None:
        self.seed = seed
        self.judge = judge

    def make(self, kind: str, split: str, n: int, taken: set[str]) -> list[Edit]:
        rng = random.Random(f"{self.seed}-{kind}-{split}")
        pairs = "held_out" if split == "held_out" else "seen"
        sampler = SceneSampler(rng.randrange(2**32), pairs=pairs)
        draft = {
            "replace": self._swap,
            "recolour": self._swap,
            "add": self._add,
            "complete": self._complete,
            "background": self._background,
            VARIATION: self._variation,
        }[kind]
        edits: list[Edit] = []
        for _ in range(TRIES):
            if len(edits) == n:
                return edits
            try:
                spec, result, source, mask, drawn = draft(kind, sampler, rng)
            except LayoutError:
                continue
            prompt = write_caption(spec, rng)
            if prompt.lower() in taken or parse_prompt(prompt) != spec:
                continue  # distinct prompts that read back as they were meant
            if not self._fair(split, spec, result, source, mask, drawn):
                continue
            taken.add(prompt.lower())
            strength = VARIATION_STRENGTH if kind == VARIATION else 1.0
            result = dataclasses.replace(result, spec=spec, caption=prompt)
            source = dataclasses.replace(source, spec=spec)
            edit_id = f"{kind}-{split}-{len(edits):03d}"
            edits.append(Edit(edit_id, kind, split, prompt, source, result, mask, strength))
        raise RuntimeError(f"only {len(edits)} of {n} fair {kind} edits ({split})")

    # -- the kinds ------------------------------------------------------------------

    def _swap(self, kind: str, sampler: SceneSampler, rng: random.Random) -> Draft:
        """One object becomes another shape and colour (replace) or colour (recolour)."""
        spec = sampler.spec(rng.choice(PROMPT_KINDS))
        result = sampler.realise(spec)
        target = rng.randrange(len(result.objects))
        new = result.objects[target]
        shape = new.shape
        if kind == "replace":
            shape = rng.choice([s for s in world.SHAPES if s != new.shape])
        colors = [c for c in world.COLORS if c != new.color and (c, shape) not in world.HELD_OUT]
        old = dataclasses.replace(new, shape=shape, color=rng.choice(colors))
        source = _with_objects(result, [old if o is new else o for o in result.objects])
        return spec, result, source, _box_mask(new, BOX_MARGIN), (target,)

    def _add(self, kind: str, sampler: SceneSampler, rng: random.Random) -> Draft:
        """A new object in an empty region, placed by a relation to the one kept."""
        spec = sampler.spec("relation")
        while any(o.color is None for o in spec.objects):
            spec = sampler.spec("relation")
        result = sampler.realise(spec)
        new = rng.randrange(2)
        kept = [o for i, o in enumerate(result.objects) if i != new]
        source = _with_objects(result, kept)
        return spec, result, source, _box_mask(result.objects[new], ADD_MARGIN), (new,)

    def _complete(self, kind: str, sampler: SceneSampler, rng: random.Random) -> Draft:
        """The top half given; the prompt names what the bottom half holds too."""
        spec = sampler.spec(rng.choice(COMPLETE_KINDS))
        for _ in range(100):  # layouts with every object wholly in one half, both used
            result = sampler.realise(spec)
            top = [o for o in result.objects if o.y0 + o.size_px <= HALF]
            bottom = [i for i, o in enumerate(result.objects) if o.y0 >= HALF]
            if top and bottom and len(top) + len(bottom) == len(result.objects):
                mask = {"boxes": [[0, HALF, world.CANVAS, world.CANVAS]]}
                return spec, result, _with_objects(result, top), mask, tuple(bottom)
        raise LayoutError(f"no layout across the halves for {spec}")

    def _background(self, kind: str, sampler: SceneSampler, rng: random.Random) -> Draft:
        """A new background behind the objects, all kept."""
        spec = sampler.spec(rng.choice(PROMPT_KINDS))
        old, new = rng.sample(list(world.BACKGROUNDS), 2)
        spec = dataclasses.replace(spec, background=new)
        result = sampler.realise(spec)
        return spec, result, dataclasses.replace(result, background=old), {"background": True}, ()

    def _variation(self, kind: str, sampler: SceneSampler, rng: random.Random) -> Draft:
        """A scene and its own prompt: redrawn in part, it should still pass."""
        spec = sampler.spec()
        scene = sampler.realise(spec)
        drawn = tuple(range(len(scene.objects)))
        return spec, scene, scene, None, drawn

    # -- fairness ---------------------------------------------------------------------

    def _fair(
        self,
        split: str,
        spec: PromptSpec,
        result: Scene,
        source: Scene,
        mask: dict | None,
        drawn: tuple[int, ...],
    ) -> bool:
        if split == "held_out":  # the objects the edit draws (or keeps) name a held-out pair
            named = [result.objects[i] for i in drawn] or list(result.objects)
            if not any((o.color, o.shape) in world.HELD_OUT for o in named):
                return False
        if split == "seen" and any(
            (o.color, o.shape) in world.HELD_OUT for o in (*result.objects, *source.objects)
        ):
            return False
        truth = render_array(result)
        if not self.judge.check(truth, spec).passed:
            return False
        if mask is None:
            return True
        pixels = mask_pixels(mask, source)
        ideal = np.where(pixels[..., None], truth, render_array(source))
        if not self.judge.check(ideal, spec).passed:
            return False
        if "boxes" not in mask:
            return True
        redrawn = touched_patches(pixels)
        changed = [o for i, o in enumerate(result.objects) if i in drawn]
        changed += [o for o in source.objects if o not in result.objects]
        kept = [o for o in source.objects if o in result.objects]
        return all(_covers(redrawn, o) is False for o in kept) and all(
            _inside(pixels, o) for o in changed
        )


def _with_objects(scene: Scene, objects: list[SceneObject]) -> Scene:
    return dataclasses.replace(scene, objects=tuple(objects))


def _box_mask(obj: SceneObject, margin: int) -> dict:
    x0, y0, x1, y1 = obj.bbox
    n = world.CANVAS
    box = [max(x0 - margin, 0), max(y0 - margin, 0), min(x1 + margin, n), min(y1 + margin, n)]
    return {"boxes": [box]}


def _covers(region: np.ndarray, obj: SceneObject) -> bool:
    x0, y0, x1, y1 = obj.bbox
    return bool(region[y0:y1, x0:x1].any())


def _inside(region: np.ndarray, obj: SceneObject) -> bool:
    x0, y0, x1, y1 = obj.bbox
    return bool(region[y0:y1, x0:x1].all())


def make_edit_set(
    seed: int = SEED,
    per_kind: int = PER_KIND,
    held_out_per_kind: int = HELD_OUT_PER_KIND,
    judge: Judge | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[Edit]:
    """Every kind's seen edits, then its held-out ones, then the variations."""
    maker = EditMaker(seed, judge or Judge.load())
    taken: set[str] = set()
    edits: list[Edit] = []
    for kind in (*EDIT_KINDS, VARIATION):
        for split, n in (("seen", per_kind), ("held_out", held_out_per_kind)):
            edits += maker.make(kind, split, n, taken)
            if progress:
                progress(f"{kind} {split}: {n}")
    return edits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    edits = make_edit_set(progress=print)
    header = {
        "edit_set": VERSION,
        "about": "Shapes image-prompt edits: source scene, mask (white = repaint), the "
        f"prompt of the whole result; {PER_KIND} seen and {HELD_OUT_PER_KIND} held-out "
        f"per kind; variations at strength {VARIATION_STRENGTH}",
        "made_by": f".venv/bin/python -m shapes_lab.make_edits --out {args.out}",
        "seed": SEED,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_edits(args.out, edits, header)
    print(f"wrote {len(edits)} edits to {args.out}")


if __name__ == "__main__":
    main()
