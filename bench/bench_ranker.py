"""How well rankings pick the transformer's candidates, side by side on the same samples.

    .venv/bin/python bench/bench_ranker.py [RANKER.safetensors ...] [--prompts-per-kind 24]
        [--weights 0,0.01,0.02,0.03]

The shipped model samples 16 candidates for each prompt of a tuning set (its own seed,
not the eval set's), with each candidate's log-likelihood, and the judge scores every
candidate once; all cached under runs/ (delete the cache after changing the model or how
it samples). Each ranking then keeps its best 4 per prompt, and the mean pass rate of
those is printed per kind: the sampling order, the likelihood alone, each ranker's cosine
plus each weight of the likelihood (`Generated.ranked`; weight 0: the cosine alone), and
a perfect ranking (the ceiling ranking can reach with these candidates). The shipped
weight was chosen with it. Never asserts.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from shapes_backend import world
from shapes_backend.model.bundle import RANKER, SHIPPED, Tokenizers, load_module
from shapes_backend.model.common import LIKELIHOOD_WEIGHT
from shapes_backend.model.onnx_pipeline import OnnxShapesPipeline
from shapes_backend.model.ranker import RankerConfig, ShapesRanker
from shapes_backend.parser import parse_prompt
from shapes_lab.evaluate import make_prompt_set
from shapes_lab.judge import Judge

MODEL = SHIPPED
CANDIDATES, KEPT, SEED = 16, 4, 777


def build_cache(path: Path, per_kind: int) -> None:
    prompts = make_prompt_set(SEED, per_kind, per_kind)
    pipeline = OnnxShapesPipeline(MODEL, prefer_cuda=False, threads=1)
    judge = Judge.load()
    images, likelihoods, passed = [], [], []
    started = time.perf_counter()
    for index, item in enumerate(prompts):
        generated = pipeline.generate(item.prompt, CANDIDATES, SEED + index, rank=False)
        spec = parse_prompt(item.prompt)
        images.append(generated.images)
        likelihoods.append(generated.log_likelihoods)
        passed.append([judge.check(image, spec).passed for image in generated.images])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        images=np.stack(images),
        log_likelihoods=np.stack(likelihoods),
        passed=np.array(passed),
        prompt=[p.prompt for p in prompts],
        kind=[p.kind for p in prompts],
        split=[p.split for p in prompts],
    )
    print(
        f"cached {len(prompts)} prompts x {CANDIDATES} candidates "
        f"in {time.perf_counter() - started:.0f} s: {path}"
    )


def cosines(ranker: ShapesRanker, tokenizers: Tokenizers, prompts, images) -> np.ndarray:
    """The ranker's cosine of each prompt with each of its candidates."""
    with torch.inference_mode():
        return np.stack(
            [
                ranker.scores(
                    torch.from_numpy(tokenizers.text.encode(str(prompt)).ids),
                    torch.from_numpy(candidates),
                ).numpy()
                for prompt, candidates in zip(prompts, images, strict=True)
            ]
        )


def kept_pass_rate(passed: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per prompt: the pass rate of the KEPT best-scored candidates."""
    order = np.argsort(-scores, axis=1, kind="stable")
    return np.take_along_axis(passed, order[:, :KEPT], axis=1).mean(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rankers", nargs="*", type=Path, default=[MODEL / RANKER])
    parser.add_argument("--prompts-per-kind", type=int, default=24)
    parser.add_argument(
        "--weights",
        default=f"0,{LIKELIHOOD_WEIGHT}",
        help="the likelihood's weights to try beside each ranker's cosine",
    )
    parser.add_argument("--cache", type=Path, default=Path("runs/ranker-candidates-v2.npz"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not args.cache.exists():
        build_cache(args.cache, args.prompts_per_kind)
    data = np.load(args.cache)
    passed, kinds, splits = data["passed"], data["kind"], data["split"]
    likelihoods = data["log_likelihoods"]
    tokenizers = Tokenizers.load(MODEL)

    columns: dict[str, np.ndarray] = {  # per prompt: the pass rate of the 4 kept
        "sampled": passed[:, :KEPT].mean(1),
        "likelihood": kept_pass_rate(passed, likelihoods),
    }
    for path in args.rankers:
        ranker = load_module(ShapesRanker, RankerConfig, path).eval()
        started = time.perf_counter()
        cosine = cosines(ranker, tokenizers, data["prompt"], data["images"])
        name = "shipped" if path.resolve() == (MODEL / RANKER).resolve() else str(path.parent)
        print(f"{name}: ranked {len(cosine)} prompts in {time.perf_counter() - started:.1f} s")
        for weight in (float(w) for w in args.weights.split(",")):
            columns[f"{name}+{weight:g}"] = kept_pass_rate(passed, cosine + weight * likelihoods)
    columns["perfect"] = np.minimum(passed.sum(1), KEPT) / KEPT

    rows = [(f"seen {k}", (splits == "seen") & (kinds == k)) for k in world.KINDS]
    rows += [("held-out", splits == "held_out"), ("seen, mean of kinds", None)]
    width = max(12, *(len(n) + 2 for n in columns))
    print(
        f"\n{len(passed)} prompts x {CANDIDATES} candidates, best {KEPT} kept: pass rate "
        "(RANKER+W: its cosine + W x the log-likelihood)"
    )
    print(f"{'':<22}" + "".join(f"{n:>{width}}" for n in columns))
    for label, mask in rows:
        if mask is None:
            values = [
                np.mean([v[(splits == "seen") & (kinds == k)].mean() for k in world.KINDS])
                for v in columns.values()
            ]
        else:
            values = [v[mask].mean() for v in columns.values()]
        print(f"{label:<22}" + "".join(f"{x:>{width}.2f}" for x in values))


if __name__ == "__main__":
    main()
