"""Shapes data throughput on one core: sampling, captions, rendering, shards on disk.

    .venv/bin/python bench/bench_shapes_data.py [--scenes 5000]

The built-in model trains at roughly 75 samples/s on this machine (BUILTIN_MODEL_NOTES),
so the stream must be far faster than that to never be the bottleneck.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from shapes_backend.parser import parse_prompt
from shapes_lab.captions import write_caption
from shapes_lab.dataset import stream, write_shard
from shapes_lab.render import render_array
from shapes_lab.sampler import SceneSampler

TRAINING_RATE = 75  # samples/s the transformer consumes (BUILTIN_MODEL_NOTES.md)


def rate(n: int, fn) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=5000)
    n = parser.parse_args().scenes
    sampler = SceneSampler(0)
    scenes = [sampler.scene() for _ in range(n)]
    it = iter(scenes)
    rows = [
        ("spec + layout", rate(n, lambda: sampler.realise(sampler.spec()))),
        ("caption", rate(n, lambda: write_caption(sampler.spec(), sampler.rng))),
        ("render (4x, box-downsampled)", rate(n, lambda: render_array(next(it)))),
        ("parse a caption", rate(n, lambda: parse_prompt(scenes[0].caption))),
    ]
    long_prompt = "a big red circle to the left of a tiny blue box on a black background " * 1500
    rows.append(("parse a 100 KB prompt", rate(5, lambda: parse_prompt(long_prompt))))
    s = stream(1)
    rows.append(("training stream (all of the above)", rate(n, lambda: next(s))))
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        write_shard(Path(out), n, seed=2)
        rows.append(("shard on disk (PNG + annotations)", n / (time.perf_counter() - started)))
    print(f"one core, {n} scenes each")
    print(f"{'step':<38}{'per second':>12}{'x training':>12}")
    for name, per_second in rows:
        print(f"{name:<38}{per_second:>12,.0f}{per_second / TRAINING_RATE:>12.0f}")


if __name__ == "__main__":
    main()
