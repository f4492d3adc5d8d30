"""The worker-process executor against in-thread, side by side, with the built-in model.

    .venv/bin/python bench/bench_executors.py [--runs 8]

Each executor runs in a fresh process, started the way the app starts (`Core.open`, the
default request: 16 candidates ranked, 4 kept): the first job (its model load, and for the
process executor the worker's start, included), then warm jobs; then the model is
unloaded. Resident memory (RSS) of the app's process is read before the first job, with
the model loaded, and after unloading; the worker's own while loaded. Targets: warm
overhead <= 5 %, first job <= 0.3 s more than in-thread, the app's memory back within
10 % after unloading.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import gc, json, sys, time
import psutil
from studio.core.app import Core

def main():
    executor, home, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    me = psutil.Process()
    with Core.open(home, executor=executor) as core:
        core.reconciled.result()
        before = me.memory_info().rss

        def job(seed):
            started = time.perf_counter()
            done = core.engine.submit(core.request("three yellow hearts on a black background",
                                                   seed=seed))
            done.wait()
            assert done.state.name == "DONE", done.error
            return time.perf_counter() - started

        first = job(0)
        warm = [job(seed) for seed in range(1, runs + 1)]
        loaded = me.memory_info().rss
        pid = core.engine.executor.pid
        worker = psutil.Process(pid).memory_info().rss if pid else 0
        core.engine.unload().result()
        gc.collect()
        time.sleep(0.3)
        after = me.memory_info().rss
    print(json.dumps({"first": first, "warm": warm, "before": before, "loaded": loaded,
                      "worker": worker, "after": after}))

if __name__ == "__main__":
    main()
"""


def measure(executor: str, runs: int) -> dict[str, float | list[float]]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as home:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, executor, home, str(runs)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    return json.loads(out.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8, help="warm jobs per executor")
    parser.add_argument("--rounds", type=int, default=2, help="fresh processes per executor")
    args = parser.parse_args()
    results: dict[str, list[dict]] = {"thread": [], "process": []}
    for _ in range(args.rounds):  # alternated, so that load on the machine hits both alike
        for executor in results:
            results[executor].append(measure(executor, args.runs))
    mib = 2**20
    print(f"built-in model, default request; {args.rounds} fresh processes x {args.runs} warm")
    print(f"{'measure':<46}{'in-thread':>12}{'process':>12}{'target':>16}")

    def row(name: str, values: dict[str, float], target: str = "") -> None:
        cells = "".join(f"{values[k]:>12.3f}" for k in results)
        print(f"{name:<46}{cells}{target:>16}")

    firsts = {k: statistics.median(r["first"] for r in v) for k, v in results.items()}
    warms = {k: statistics.median(w for r in v for w in r["warm"]) for k, v in results.items()}
    row("first job, load included (s, median)", firsts)
    row("warm job (s, median)", warms)
    extra_first = firsts["process"] - firsts["thread"]
    overhead = warms["process"] / warms["thread"] - 1
    print(f"{'process - in-thread, first job (s)':<46}{extra_first:>24.3f}{'<= 0.300':>16}")
    print(f"{'process overhead, warm (%)':<46}{100 * overhead:>24.1f}{'<= 5.0':>16}")
    for key, label in (
        ("before", "app RSS before the first job (MiB)"),
        ("loaded", "app RSS, model loaded (MiB)"),
        ("worker", "worker RSS, model loaded (MiB)"),
        ("after", "app RSS after unloading (MiB)"),
    ):
        row(label, {k: statistics.median(r[key] for r in v) / mib for k, v in results.items()})
    back = {
        k: statistics.median(r["after"] / r["before"] - 1 for r in v) for k, v in results.items()
    }
    cells = "".join(f"{100 * back[k]:>12.1f}" for k in results)
    print(f"{'app RSS after unloading vs before (%)':<46}{cells}{'<= 10.0':>16}")


if __name__ == "__main__":
    main()
