"""How well rankers pick the transformer's candidates, side by side on the same samples.

    .venv/bin/python bench/bench_ranker.py [RANKER.safetensors ...] [--prompts-per-kind 24]

The shipped transformer samples 16 candidates for each prompt of a tuning set (its own
seed, not the eval set's), and the judge scores every candidate once; both are cached
under runs/. Each ranker then keeps its best 4 per prompt, and the mean pass rate of
those is printed per kind, next to keeping 4 at random (the sampling order) and to a
perfect ranker (the ceiling ranking can reach with these candidates). Never asserts.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from plugins.shapes import world
from plugins.shapes.evaluate import make_prompt_set
from plugins.shapes.judge import Judge
from plugins.shapes.model.bundle import RANKER, Tokenizers, load_module
from plugins.shapes.model.onnx_pipeline import OnnxShapesPipeline
from plugins.shapes.model.ranker import RankerConfig, ShapesRanker
from plugins.shapes.parser import parse_prompt

MODEL = Path(__file__).resolve().parents[1] / "resources" / "shapes" / "model"
CANDIDATES, KEPT, SEED = 16, 4, 777


def build_cache(path: Path, per_kind: int) -> None:
    prompts = make_prompt_set(SEED, per_kind, per_kind)
    pipeline = OnnxShapesPipeline(MODEL, prefer_cuda=False, threads=1)
    judge = Judge.load()
    images, passed = [], []
    started = time.perf_counter()
    for index, item in enumerate(prompts):
        generated = pipeline.generate(item.prompt, CANDIDATES, SEED + index, rank=False)
        spec = parse_prompt(item.prompt)
        images.append(generated.images)
        passed.append([judge.check(image, spec).passed for image in generated.images])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path, images=np.stack(images), passed=np.array(passed), prompt=[p.prompt for p in prompts],
        kind=[p.kind for p in prompts], split=[p.split for p in prompts],
    )  # fmt: skip
    print(f"cached {len(prompts)} prompts x {CANDIDATES} candidates "
          f"in {time.perf_counter() - started:.0f} s: {path}")  # fmt: skip


def rank_all(ranker: ShapesRanker, tokenizers: Tokenizers, prompts, images) -> np.ndarray:
    """The candidates' indices per prompt, best first."""
    orders = []
    with torch.inference_mode():
        for prompt, candidates in zip(prompts, images, strict=True):
            text = torch.from_numpy(tokenizers.text.encode(str(prompt)).ids)
            scores = ranker.scores(text, torch.from_numpy(candidates)).numpy()
            orders.append(np.argsort(-scores, kind="stable"))
    return np.stack(orders)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rankers", nargs="*", type=Path, default=[MODEL / RANKER])
    parser.add_argument("--prompts-per-kind", type=int, default=24)
    parser.add_argument("--cache", type=Path, default=Path("runs/ranker-candidates.npz"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not args.cache.exists():
        build_cache(args.cache, args.prompts_per_kind)
    data = np.load(args.cache)
    passed, kinds, splits = data["passed"], data["kind"], data["split"]
    tokenizers = Tokenizers.load(MODEL)

    columns: dict[str, np.ndarray] = {  # per prompt: the pass rate of the 4 kept
        "random": passed[:, :KEPT].mean(1),
        "perfect": np.minimum(passed.sum(1), KEPT) / KEPT,
    }
    for path in args.rankers:
        ranker = load_module(ShapesRanker, RankerConfig, path).eval()
        started = time.perf_counter()
        order = rank_all(ranker, tokenizers, data["prompt"], data["images"])
        kept = np.take_along_axis(passed, order[:, :KEPT], axis=1)
        name = "shipped" if path.resolve() == (MODEL / RANKER).resolve() else str(path.parent)
        columns[name] = kept.mean(1)
        print(f"{name}: ranked {len(order)} prompts in {time.perf_counter() - started:.1f} s")

    rows = [(f"seen {k}", (splits == "seen") & (kinds == k)) for k in world.KINDS]
    rows += [("held-out", splits == "held_out"), ("seen, mean of kinds", None)]
    width = max(12, *(len(n) + 2 for n in columns))
    print(f"\n{len(passed)} prompts x {CANDIDATES} candidates, best {KEPT} kept: pass rate")
    print(f"{'':<22}" + "".join(f"{n:>{width}}" for n in columns))
    for label, mask in rows:
        if mask is None:
            values = [np.mean([v[(splits == "seen") & (kinds == k)].mean() for k in world.KINDS])
                      for v in columns.values()]  # fmt: skip
        else:
            values = [v[mask].mean() for v in columns.values()]
        print(f"{label:<22}" + "".join(f"{x:>{width}.2f}" for x in values))


if __name__ == "__main__":
    main()
