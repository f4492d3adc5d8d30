"""`studio eval --edits`: the edit set, its fairness, the scorer, and a run through the engine."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from shapes_backend import world
from shapes_backend.parser import parse_prompt
from shapes_lab.edit_set import DEFAULT_EDITS, EDIT_KINDS, KINDS, VARIATION, Edit, load_edits
from shapes_lab.evaluate_edits import evaluate_edits, model_geometry
from shapes_lab.judge import Judge
from shapes_lab.make_edits import (
    ADD_MARGIN,
    BOX_MARGIN,
    HALF,
    VARIATION_STRENGTH,
    make_edit_set,
    touched_patches,
)
from shapes_lab.render import render, render_array
from studio.api import EXIT_OK, EXIT_USAGE
from studio.cli import main


@pytest.fixture(scope="module")
def judge() -> Judge:
    return Judge.load()


@pytest.fixture(scope="module")
def edits() -> list[Edit]:
    return load_edits(DEFAULT_EDITS)


def test_the_shipped_edit_set(edits) -> None:
    header = json.loads(DEFAULT_EDITS.read_text().splitlines()[0])
    assert header["edit_set"] == 1 and "make_edits" in header["made_by"]
    tally = Counter((e.kind, e.split) for e in edits)
    for kind in KINDS:
        assert tally[kind, "seen"] >= 20 and tally[kind, "held_out"] >= 5, kind
    assert len({e.id for e in edits}) == len(edits)
    assert len({e.prompt.lower() for e in edits}) == len(edits)
    for e in edits:
        assert Edit.from_json(e.to_json()).to_json() == e.to_json()
        spec = parse_prompt(e.prompt)
        assert spec.kind is not None and spec == e.result.spec, e.id
        pairs = {(o.color, o.shape) for o in e.result.objects}
        assert (e.split == "held_out") == bool(pairs & world.HELD_OUT), e.id
        assert spec.uses_held_out_pair() == (e.split == "held_out"), e.id


def test_the_set_is_made_again_identically(edits, judge) -> None:
    assert [e.to_json() for e in make_edit_set(judge=judge)] == [e.to_json() for e in edits]


def test_every_intended_result_passes_the_judge(edits, judge) -> None:
    snap, _ = model_geometry()
    for e in edits:
        spec = parse_prompt(e.prompt)
        assert judge.check(render(e.result), spec).passed, e.id
        mask = e.mask_array()
        if mask is None:
            continue
        # The ideal edits pass too: the source kept outside the mask, and outside the
        # built-in model's snapped mask (what a perfect sampler would give back).
        for region in (mask, snap(e)):
            ideal = np.where(region[..., None], render_array(e.result), render_array(e.source))
            assert judge.check(ideal, spec).passed, e.id


def _box(obj, margin: int) -> list[int]:
    x0, y0, x1, y1 = obj.bbox
    n = world.CANVAS
    return [max(x0 - margin, 0), max(y0 - margin, 0), min(x1 + margin, n), min(y1 + margin, n)]


def test_masks_are_what_each_kind_says(edits) -> None:
    for e in edits:
        source, result = list(e.source.objects), list(e.result.objects)
        kept = [o for o in source if o in result]
        if e.kind in ("replace", "recolour"):
            (old,) = [o for o in source if o not in result]
            (new,) = [o for o in result if o not in source]
            assert (old.x0, old.y0, old.size_px) == (new.x0, new.y0, new.size_px), e.id
            assert old.color != new.color and (old.shape == new.shape) == (e.kind == "recolour")
            assert e.mask == {"boxes": [_box(new, BOX_MARGIN)]}, e.id
        elif e.kind == "add":
            (new,) = [o for o in result if o not in source]
            assert len(kept) == 1 == len(source) and e.result.spec.relation is not None, e.id
            assert e.mask == {"boxes": [_box(new, ADD_MARGIN)]}, e.id
        elif e.kind == "complete":
            assert e.mask == {"boxes": [[0, HALF, world.CANVAS, world.CANVAS]]}, e.id
            assert source == [o for o in result if o.y0 + o.size_px <= HALF] and source, e.id
            assert all(o.y0 >= HALF for o in result if o not in source), e.id
        elif e.kind == "background":
            assert source == result and e.source.background != e.result.background, e.id
            plain = np.asarray(world.BACKGROUNDS[e.source.background], np.uint8)
            assert (e.mask_array() == (render_array(e.source) == plain).all(-1)).all(), e.id
        else:
            assert e.kind == VARIATION and e.mask is None and source == result, e.id
            assert e.strength == VARIATION_STRENGTH and e.source.background == e.result.background
        if e.kind not in ("background", VARIATION):  # kept objects clear of redrawn patches
            redrawn = touched_patches(e.mask_array())
            for o in kept:
                x0, y0, x1, y1 = o.bbox
                assert not redrawn[y0:y1, x0:x1].any(), e.id


def _encode(image: np.ndarray) -> np.ndarray:
    """A stand-in patch tokenizer: each 8 x 8 patch's pixel sum."""
    patches = image.reshape(8, 8, 8, 8, 3).transpose(0, 2, 1, 3, 4)
    return patches.reshape(64, -1).astype(np.int64).sum(axis=1)


def test_the_scorer_counts_passes_preservation_and_patches(edits, judge) -> None:
    replace = next(e for e in edits if e.kind == "replace" and e.split == "seen")
    held = next(e for e in edits if e.kind == "add" and e.split == "held_out")
    variation = next(e for e in edits if e.kind == VARIATION and e.split == "seen")

    def snap(edit: Edit) -> np.ndarray:
        return touched_patches(edit.mask_array())

    def generate(edit: Edit, seed: int, ranked: bool) -> list[Image.Image]:
        ideal = render_array(edit.result)
        if edit.kind == VARIATION:  # ranked: the source itself; unranked: half redrawn
            changed = ideal.copy()
            changed[32:] = 255 - changed[32:]
            return [Image.fromarray(ideal)] * 2 if ranked else [Image.fromarray(changed)]
        if ranked:  # the ideal edit, and the source unedited: one pass, both preserved
            return [Image.fromarray(ideal), render(edit.source)]
        stray = ideal.copy()  # passes, but one pixel outside the mask moved
        fixed = np.argwhere(~snap(edit))[0]
        stray[tuple(fixed)] ^= 1
        return [Image.fromarray(stray)]

    check = lambda image, spec: judge.check(image, spec).passed  # noqa: E731
    report = evaluate_edits([replace, held, variation], generate, check, snap, _encode)
    data = report.to_json()
    assert data["replace"] == {
        "score": 0.5,
        "unranked_score": 1.0,
        "preservation": 1.0,
        "unranked_preservation": 0.0,
        "edits": 1,
        "images": 2,
    }
    assert data["held_out"]["add"]["score"] == 0.5 and data["held_out"]["overall"]["score"] == 0.5
    assert data["overall"]["preservation"] == round(4 / 6, 4) and data["overall"]["images"] == 6
    seen = data["variations"]["seen"]
    assert seen["score"] == 1.0 and seen["patches_kept"] == 1.0
    assert seen["unranked_patches_kept"] == 0.5 and seen["images"] == 2
    targets = data["targets"]
    assert targets["preservation"]["met"] is False and targets["variation_score"]["met"] is True
    assert "patches kept" in report.table() and "MISSED" in report.table()


def test_edit_sets_are_checked(tmp_path) -> None:
    path = tmp_path / "edits.jsonl"
    path.write_text('{"edit_set": 1}\n{"id": "x", "kind": "replace"}\n')
    with pytest.raises(ValueError, match=r"edits\.jsonl:2"):
        load_edits(path)
    assert main(["eval", "--edits", "--edit-set", str(tmp_path / "none.jsonl")]) == EXIT_USAGE


def test_studio_eval_edits_runs_through_the_engine(capsys) -> None:
    assert main(["eval", "--edits", "--limit", "1", "--json"]) == EXIT_OK
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {*EDIT_KINDS, "overall", "held_out", "variations", "targets", "settings"}
    assert data["overall"]["preservation"] == 1.0 and data["overall"]["images"] == 10 * 2 * 4
    assert data["replace"]["edits"] == 1 and data["held_out"]["complete"]["images"] == 4
    assert 0.0 <= data["variations"]["seen"]["patches_kept"] <= 1.0
    assert data["settings"]["candidates"] == 16 and data["settings"]["seconds"] > 0
