"""Benchmark the Shapes judge: its upper bound, its false passes, its speed.

    .venv/bin/python bench/bench_judge.py [--per-kind 500] [--seed 0]

Per scene kind, on fresh ground-truth scenes (any colour-shape pair, held-out ones
included): the share the judge passes against their own spec (the upper bound of any
model's score), the share it passes against a clearly wrong spec of the same kind (false
passes), and checks per second on one core. Prints figures; never asserts.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from shapes_backend import world
from shapes_backend.scene import PromptSpec
from shapes_lab.judge import Judge, wrong_spec
from shapes_lab.render import render_array
from shapes_lab.sampler import SceneSampler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-kind", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)  # the judge itself never uses torch; keep the machine calm

    started = time.perf_counter()
    judge = Judge.load()
    print(
        f"judge loaded in {1e3 * (time.perf_counter() - started):.1f} ms; "
        f"{args.per_kind} scenes per kind, seed {args.seed}"
    )
    sampler = SceneSampler(args.seed, pairs="any")
    header = f"{'kind':<10}{'images':>7}{'GT pass':>9}{'false pass':>12}{'checks/s':>10}"
    print(header)
    totals = np.zeros(4)  # images, passes, false passes, seconds
    failures: dict[str, int] = {}
    for kind in world.KINDS:
        cases: list[tuple[np.ndarray, PromptSpec, PromptSpec]] = []
        for _ in range(args.per_kind):
            scene = sampler.realise(sampler.spec(kind))
            cases.append((render_array(scene), scene.spec, wrong_spec(scene, sampler)))
        passed = false_passes = 0
        clock = time.perf_counter()
        for image, own, wrong in cases:
            verdict = judge.check(image, own)
            passed += verdict.passed
            for reason in verdict.failures:
                failures[reason] = failures.get(reason, 0) + 1
            false_passes += judge.check(image, wrong).passed
        seconds = time.perf_counter() - clock
        n = len(cases)
        print(
            f"{kind:<10}{n:>7}{passed / n:>9.4f}{false_passes / n:>12.4f}{2 * n / seconds:>10.0f}"
        )
        totals += (n, passed, false_passes, seconds)
    n, passed, false_passes, seconds = totals
    print(
        f"{'all':<10}{n:>7.0f}{passed / n:>9.4f}{false_passes / n:>12.4f}{2 * n / seconds:>10.0f}"
    )
    if failures:
        print("ground-truth failures, most common first:")
        for reason, count in sorted(failures.items(), key=lambda kv: -kv[1])[:10]:
            print(f"  {count:5d}  {reason}")

    # Detection alone, on the hardest images (four objects).
    images = [render_array(sampler.realise(sampler.spec("count"))) for _ in range(200)]
    clock = time.perf_counter()
    for image in images:
        judge.detect(image)
    print(f"detect only (count scenes): {len(images) / (time.perf_counter() - clock):.0f} images/s")


if __name__ == "__main__":
    main()
