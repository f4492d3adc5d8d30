"""The yardstick: score generated images against their prompts, GenEval-style.

A prompt file has one prompt per line: `kind<TAB>split<TAB>prompt` (split is `seen` or
`held_out`), or just the prompt (its kind and split are then read from its words).
Lines starting with `#` are comments.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from PIL import Image

from shapes_backend import world
from shapes_backend.scene import PromptSpec
from shapes_lab.sampler import HELD_OUT_KINDS, SceneSampler

DEFAULT_PROMPTS = Path(str(files("shapes_lab") / "eval-prompts-v1.tsv"))  # package data
SPLITS = ("seen", "held_out")


@dataclass(frozen=True)
class EvalPrompt:
    kind: str
    split: str
    prompt: str


def load_prompts(path: Path) -> list[EvalPrompt]:
    """Read a prompt file; raises ValueError naming the first bad line."""
    from shapes_backend.parser import parse_prompt

    prompts = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) == 3:
            kind, split, prompt = fields
        elif len(fields) == 1:
            spec = parse_prompt(line)
            kind = spec.kind or ""
            split = "held_out" if spec.uses_held_out_pair() else "seen"
            prompt = line
        else:
            raise ValueError(f"{path}:{number}: expected 'kind<TAB>split<TAB>prompt' or a prompt")
        if kind not in world.KINDS or split not in SPLITS:
            raise ValueError(f"{path}:{number}: unknown kind {kind!r} or split {split!r}")
        prompts.append(EvalPrompt(kind, split, prompt.strip()))
    return prompts


def make_prompt_set(seed: int, per_kind: int, held_out_per_kind: int) -> list[EvalPrompt]:
    """Distinct prompts per kind from seen pairs, then a held-out section."""
    from shapes_backend.parser import parse_prompt
    from shapes_lab.captions import write_caption

    prompts: list[EvalPrompt] = []
    sections = [
        ("seen", world.KINDS, per_kind, "seen"),
        ("held_out", HELD_OUT_KINDS, held_out_per_kind, "held_out"),
    ]
    for split, kinds, n, pairs in sections:
        sampler = SceneSampler(seed, kinds=kinds, pairs=pairs)  # type: ignore[arg-type]
        rng = random.Random(seed)
        for kind in kinds:
            seen: set[str] = set()
            while len(seen) < n:
                spec = sampler.spec(kind)
                caption = write_caption(spec, rng)
                if caption.lower() in seen or parse_prompt(caption) != spec:
                    continue  # distinct prompts that read back as they were meant
                seen.add(caption.lower())
                prompts.append(EvalPrompt(kind, split, caption))
    return prompts


@dataclass
class Tally:
    """Passes and totals, ranked (the backend's default) and without ranking."""

    prompts: int = 0
    images: int = 0
    passed: int = 0
    unranked_images: int = 0
    unranked_passed: int = 0

    @property
    def score(self) -> float:
        return self.passed / self.images if self.images else 0.0

    @property
    def unranked_score(self) -> float:
        return self.unranked_passed / self.unranked_images if self.unranked_images else 0.0


@dataclass
class Report:
    tallies: dict[tuple[str, str], Tally] = field(default_factory=dict)  # (split, kind)
    settings: dict[str, Any] = field(default_factory=dict)

    def tally(self, split: str, kind: str) -> Tally:
        return self.tallies.setdefault((split, kind), Tally())

    def kinds(self, split: str) -> list[str]:
        return [k for k in world.KINDS if (split, k) in self.tallies]

    def mean(self, split: str, unranked: bool = False) -> float:
        """The mean over kinds (each kind counts once, whatever its number of images)."""
        tallies = [self.tallies[split, k] for k in self.kinds(split)]
        scores = [t.unranked_score if unranked else t.score for t in tallies]
        return sum(scores) / len(scores) if scores else 0.0

    def to_json(self) -> dict[str, Any]:
        def entry(t: Tally) -> dict[str, Any]:
            return {
                "score": round(t.score, 4),
                "unranked_score": round(t.unranked_score, 4),
                "prompts": t.prompts,
                "images": t.images,
            }

        data: dict[str, Any] = {
            "overall": {
                "score": round(self.mean("seen"), 4),
                "unranked_score": round(self.mean("seen", True), 4),
            },
        }
        data |= {k: entry(self.tallies["seen", k]) for k in self.kinds("seen")}
        if self.kinds("held_out"):
            held = {k: entry(self.tallies["held_out", k]) for k in self.kinds("held_out")}
            held["overall"] = {
                "score": round(self.mean("held_out"), 4),
                "unranked_score": round(self.mean("held_out", True), 4),
            }
            data["held_out"] = held
        data["settings"] = self.settings
        return data

    def table(self) -> str:
        header = f"{'split':<9}{'kind':<10}{'prompts':>8}{'images':>8}{'ranked':>8}{'unranked':>10}"
        lines = [header]
        for split in SPLITS:
            for kind in self.kinds(split):
                t = self.tallies[split, kind]
                lines.append(
                    f"{split:<9}{kind:<10}{t.prompts:>8}{t.images:>8}"
                    f"{t.score:>8.3f}{t.unranked_score:>10.3f}"
                )
            if self.kinds(split):
                label = f"{split}: mean over kinds"
                lines.append(f"{label:<35}{self.mean(split):>8.3f}{self.mean(split, True):>10.3f}")
        return "\n".join(lines)


Judge = Callable[[Image.Image, PromptSpec], bool]


def evaluate_images(
    prompts: Iterable[EvalPrompt],
    generate: Callable[[str, int, bool], list[Image.Image]],
    judge: Judge,
    *,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> Report:
    """Score `generate(prompt, seed, ranked)` for each prompt, ranked and unranked."""
    from shapes_backend.parser import parse_prompt

    report = Report()
    for index, item in enumerate(prompts):
        spec = parse_prompt(item.prompt)
        tally = report.tally(item.split, item.kind)
        tally.prompts += 1
        for ranked in (True, False):
            images = generate(item.prompt, seed + index, ranked)
            passes = sum(judge(image, spec) for image in images)
            if ranked:
                tally.images += len(images)
                tally.passed += passes
            else:
                tally.unranked_images += len(images)
                tally.unranked_passed += passes
        if progress:
            progress(index + 1)
    return report
