"""The image tokenizer's ceiling: the judge's pass rate on reconstructions of ground truth.

    .venv/bin/python bench/bench_image_tokenizer.py [--per-kind 100] [--configs 8x8:1024,8x8:4096]

Each config is PATCH_HxPATCH_W:CODES; its codebook is learned here (k-means on masks of
freshly rendered scenes) and scored on other scenes. No model can beat this ceiling.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from shapes_backend import world
from shapes_backend.model.image_tokens import ImageTokenizer
from shapes_lab.judge import Judge
from shapes_lab.model.fit_tokenizer import fit_tokenizer
from shapes_lab.render import render_array
from shapes_lab.sampler import SceneSampler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-kind", type=int, default=100)
    parser.add_argument("--scenes", type=int, default=8000, help="scenes to learn codes from")
    parser.add_argument("--configs", default="8x8:1024,8x4:1024,8x8:4096")
    parser.add_argument("--tokenizer", type=Path, help="score this codebook file instead")
    args = parser.parse_args()
    judge = Judge.load()
    print(
        f"{'config':<12}{'fit s':>7}"
        + "".join(f"{k:>9}" for k in world.KINDS)
        + f"{'mean':>8}{'mse':>7}{'codes used':>12}"
    )
    configs = [str(args.tokenizer)] if args.tokenizer else args.configs.split(",")
    for config in configs:
        started = time.perf_counter()
        if args.tokenizer:
            tokenizer = ImageTokenizer.load(args.tokenizer)
            config = f"{tokenizer.patch_h}x{tokenizer.patch_w}:{tokenizer.n_codes} (file)"
        else:
            patch, codes = config.split(":")
            patch_h, patch_w = (int(v) for v in patch.split("x"))
            tokenizer = fit_tokenizer(patch_h, patch_w, int(codes), args.scenes, seed=0)
        fit = time.perf_counter() - started
        scores, errors, used = ceiling(tokenizer, judge, args.per_kind)
        print(
            f"{config:<12}{fit:>7.0f}"
            + "".join(f"{scores[k]:>9.3f}" for k in world.KINDS)
            + f"{np.mean(list(scores.values())):>8.3f}{np.mean(errors):>7.1f}"
            + f"{used:>7}/{tokenizer.n_codes}"
        )


def ceiling(tokenizer: ImageTokenizer, judge: Judge, per_kind: int):
    sampler = SceneSampler(123, pairs="any")
    scores, errors, codes = {}, [], set()
    for kind in world.KINDS:
        passed = 0
        for _ in range(per_kind):
            scene = sampler.realise(sampler.spec(kind))
            image = render_array(scene)
            background, tokens = tokenizer.encode(image)
            again = tokenizer.decode(background, tokens)
            errors.append(((again.astype(float) - image) ** 2).mean())
            codes.update(tokenizer.mask_codes(tokens).tolist())
            passed += judge.check(again, scene.spec).passed
        scores[kind] = passed / per_kind
    return scores, errors, len(codes)


if __name__ == "__main__":
    main()
