"""The edit benchmark: score image-prompt edits against their prompts, and preservation.

Each edit is generated twice (ranked: `count` shown of `candidates`; unranked: as many
candidates as shown). Every shown image is judged against the prompt of the whole
intended result (a kind's score is the share of its images that pass, as in
`evaluate.py`), and checked for preservation: pixel-identical to the source everywhere
outside the model's snapped mask. Variations (no mask) instead count the patch tokens
(the 64 of the image tokenizer, the background token left out) that stay as they were.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from shapes_backend.scene import PromptSpec
from shapes_lab.edit_set import EDIT_KINDS, SPLITS, VARIATION, Edit

Generate = Callable[[Edit, int, bool], list[Image.Image]]  # (edit, seed, ranked) -> shown
Check = Callable[[Image.Image, PromptSpec], bool]
Snap = Callable[[Edit], np.ndarray]  # (64, 64) bool: the pixels the model may change
Encode = Callable[[np.ndarray], np.ndarray]  # a 64 x 64 x 3 image -> its patch tokens

# The targets: (what, at least).
TARGETS = {
    "preservation": 1.0,
    "edit_score": 0.80,
    "held_out_edit_score": 0.60,
    "variation_patches_kept": 0.60,
    "variation_score": 0.80,
}


@dataclass
class Counts:
    images: int = 0
    passed: int = 0
    preserved: int = 0  # edits only
    patches: int = 0  # variations only
    patches_kept: int = 0

    @property
    def score(self) -> float:
        return self.passed / self.images if self.images else 0.0

    @property
    def preservation(self) -> float:
        return self.preserved / self.images if self.images else 0.0

    @property
    def kept(self) -> float:
        return self.patches_kept / self.patches if self.patches else 0.0


@dataclass
class EditTally:
    edits: int = 0
    ranked: Counts = field(default_factory=Counts)
    unranked: Counts = field(default_factory=Counts)


@dataclass
class EditReport:
    tallies: dict[tuple[str, str], EditTally] = field(default_factory=dict)  # (split, kind)
    settings: dict[str, Any] = field(default_factory=dict)

    def tally(self, split: str, kind: str) -> EditTally:
        return self.tallies.setdefault((split, kind), EditTally())

    def kinds(self, split: str) -> list[str]:
        return [k for k in EDIT_KINDS if (split, k) in self.tallies]

    def mean(self, split: str, unranked: bool = False) -> float:
        """The edit score's mean over kinds (each kind counts once)."""
        scores = [self._counts(split, k, unranked).score for k in self.kinds(split)]
        return sum(scores) / len(scores) if scores else 0.0

    def preservation(self) -> tuple[int, int]:
        """(preserved, images) over every edit image, both splits, ranked and unranked."""
        counts = [
            c
            for (_, kind), t in self.tallies.items()
            if kind != VARIATION
            for c in (t.ranked, t.unranked)
        ]
        return sum(c.preserved for c in counts), sum(c.images for c in counts)

    def _counts(self, split: str, kind: str, unranked: bool) -> Counts:
        tally = self.tallies[split, kind]
        return tally.unranked if unranked else tally.ranked

    def targets(self) -> dict[str, dict[str, Any]]:
        preserved, images = self.preservation()
        values = {
            "preservation": preserved / images if images else None,
            "edit_score": self.mean("seen") if self.kinds("seen") else None,
            "held_out_edit_score": self.mean("held_out") if self.kinds("held_out") else None,
        }
        variations = self.tallies.get(("seen", VARIATION))
        values["variation_patches_kept"] = variations.ranked.kept if variations else None
        values["variation_score"] = variations.ranked.score if variations else None
        return {
            name: {
                "target": target,
                "value": None if values[name] is None else round(values[name], 4),
                "met": None if values[name] is None else values[name] >= target,
            }
            for name, target in TARGETS.items()
        }

    def to_json(self) -> dict[str, Any]:
        def edit_entry(t: EditTally) -> dict[str, Any]:
            return {
                "score": round(t.ranked.score, 4),
                "unranked_score": round(t.unranked.score, 4),
                "preservation": round(t.ranked.preservation, 4),
                "unranked_preservation": round(t.unranked.preservation, 4),
                "edits": t.edits,
                "images": t.ranked.images,
            }

        def variation_entry(t: EditTally) -> dict[str, Any]:
            return {
                "score": round(t.ranked.score, 4),
                "unranked_score": round(t.unranked.score, 4),
                "patches_kept": round(t.ranked.kept, 4),
                "unranked_patches_kept": round(t.unranked.kept, 4),
                "edits": t.edits,
                "images": t.ranked.images,
            }

        preserved, images = self.preservation()
        data: dict[str, Any] = {
            "overall": {
                "score": round(self.mean("seen"), 4),
                "unranked_score": round(self.mean("seen", True), 4),
                "preservation": round(preserved / images, 4) if images else None,
                "preserved_images": preserved,
                "images": images,
            },
        }
        data |= {k: edit_entry(self.tallies["seen", k]) for k in self.kinds("seen")}
        if self.kinds("held_out"):
            held = {k: edit_entry(self.tallies["held_out", k]) for k in self.kinds("held_out")}
            held["overall"] = {
                "score": round(self.mean("held_out"), 4),
                "unranked_score": round(self.mean("held_out", True), 4),
            }
            data["held_out"] = held
        variations = {
            split: variation_entry(self.tallies[split, VARIATION])
            for split in SPLITS
            if (split, VARIATION) in self.tallies
        }
        if variations:
            data["variations"] = variations
        data["targets"] = self.targets()
        data["settings"] = self.settings
        return data

    def table(self) -> str:
        header = (
            f"{'split':<9}{'kind':<11}{'edits':>6}{'images':>8}{'ranked':>8}{'unranked':>10}"
            f"{'preserved':>11}"
        )
        lines = [header]
        for split in SPLITS:
            for kind in self.kinds(split):
                t = self.tallies[split, kind]
                preserved = t.ranked.preserved + t.unranked.preserved
                share = preserved / (t.ranked.images + t.unranked.images)
                lines.append(
                    f"{split:<9}{kind:<11}{t.edits:>6}{t.ranked.images:>8}"
                    f"{t.ranked.score:>8.3f}{t.unranked.score:>10.3f}{share:>11.3f}"
                )
            if self.kinds(split):
                label = f"{split}: mean over edit kinds"
                lines.append(f"{label:<34}{self.mean(split):>8.3f}{self.mean(split, True):>10.3f}")
        for split in SPLITS:
            if (split, VARIATION) in self.tallies:
                t = self.tallies[split, VARIATION]
                lines.append(
                    f"{split:<9}{VARIATION:<11}{t.edits:>6}{t.ranked.images:>8}"
                    f"{t.ranked.score:>8.3f}{t.unranked.score:>10.3f}"
                    f"{t.ranked.kept:>11.3f}  patches kept (ranked; unranked {t.unranked.kept:.3f})"
                )
        preserved, images = self.preservation()
        if images:
            lines.append(f"preserved outside the snapped mask: {preserved}/{images} images")
        for name, target in self.targets().items():
            if target["value"] is not None:
                verdict = "met" if target["met"] else "MISSED"
                lines.append(
                    f"target {name}: {target['value']:.3f} >= {target['target']} {verdict}"
                )
        return "\n".join(lines)


def evaluate_edits(
    edits: Iterable[Edit],
    generate: Generate,
    check: Check,
    snap: Snap,
    encode: Encode,
    *,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> EditReport:
    """Score `generate(edit, seed, ranked)` for each edit, ranked and unranked."""
    from shapes_backend.parser import parse_prompt
    from shapes_lab.render import render_array

    report = EditReport()
    for index, edit in enumerate(edits):
        spec = parse_prompt(edit.prompt)
        source = render_array(edit.source)
        tally = report.tally(edit.split, edit.kind)
        tally.edits += 1
        if edit.kind == VARIATION:
            source_tokens = encode(source)
        else:
            fixed = ~snap(edit)
        for ranked in (True, False):
            counts = tally.ranked if ranked else tally.unranked
            for image in generate(edit, seed + index, ranked):
                pixels = np.asarray(image.convert("RGB"))
                counts.images += 1
                counts.passed += bool(check(image, spec))
                if edit.kind == VARIATION:
                    tokens = encode(pixels)
                    counts.patches += len(tokens)
                    counts.patches_kept += int((tokens == source_tokens).sum())
                else:
                    counts.preserved += bool(np.array_equal(pixels[fixed], source[fixed]))
        if progress:
            progress(index + 1)
    return report


def model_geometry() -> tuple[Snap, Encode]:
    """The built-in model's snapped mask and patch tokens (its shipped image tokenizer);
    raises ImportError when the installed Shapes backend has no image prompts."""
    from shapes_backend.model.bundle import SHIPPED, Tokenizers
    from shapes_backend.model.common import ImagePrompt
    from shapes_backend.model.edit import snapped_mask
    from shapes_lab.render import render_array

    tokenizer = Tokenizers.load(SHIPPED).image

    def snap(edit: Edit) -> np.ndarray:
        mask = edit.mask_array()
        weights = None if mask is None else mask.astype(np.float32)
        prompt = ImagePrompt(render_array(edit.source), weights, edit.strength)
        return np.asarray(snapped_mask(tokenizer, prompt), bool)

    def encode(image: np.ndarray) -> np.ndarray:
        return tokenizer.encode(image)[1]

    return snap, encode
