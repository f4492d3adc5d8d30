"""The built-in model, PyTorch vs ONNX Runtime, side by side: load, first preview, a
default request end to end, peak memory, and FLOPs against what this CPU sustains.

    .venv/bin/python bench/bench_shapes_backends.py [--runs 5] [--threads 1,2] [--bundle DIR]
        [--prompt TEXT]

A prompt naming objects of different colours ("a cyan triangle and a purple star") also
runs each object's phrase as a prompt (`Phrases`): about twice the work of one that does not.

Each runtime runs in a fresh process (so imports and peak memory are its own). A default
request samples 16 candidates, ranks them and keeps 4; time includes decoding and ranking.
Targets: ONNX <= 1.5 s, PyTorch <= 2.5 s, ONNX >= 1.5x faster, first preview <= 0.3 s,
load <= 1 s, peak memory <= 1 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from shapes_backend.model.bundle import SHIPPED

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "three yellow hearts on a black background"

CHILD = r"""
import json, os, resource, sys, time
threads = int(sys.argv[2])
started = time.perf_counter()
from pathlib import Path
from studio.api import GenerationRequest
if sys.argv[1] == "pytorch":
    import torch
    torch.set_num_threads(threads)
    from shapes_backend.backend import ShapesBackend as Backend
else:
    from shapes_backend.onnx_backend import ShapesOnnxBackend as Backend
imported = time.perf_counter()
backend = Backend(Path(sys.argv[3]), threads=threads)
backend.load("")
loaded = time.perf_counter()

class Ctx:
    cancelled = False
    device = "cpu"
    def __init__(self):
        self.start = time.perf_counter()
        self.first_preview = None
    def check_cancelled(self): pass
    def progress(self, step, total): pass
    def preview(self, image):
        if self.first_preview is None:
            self.first_preview = time.perf_counter() - self.start

request = GenerationRequest(sys.argv[4], seed=1, count=4, candidates=16)
backend.generate(request, Ctx())  # warm-up
times, previews = [], []
for run in range(int(sys.argv[5])):
    ctx = Ctx()
    backend.generate(request.replace(seed=run + 2), ctx)
    times.append(time.perf_counter() - ctx.start)
    previews.append(ctx.first_preview)
flops = 0
if sys.argv[1] == "pytorch":
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        backend.generate(request, Ctx())
    flops = counter.get_total_flops()
print(json.dumps({"import_s": imported - started, "load_s": loaded - imported,
                  "times": times, "previews": previews, "flops": flops,
                  "device": backend.device(),
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_child(runtime: str, threads: int, bundle: Path, prompt: str, runs: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-c", CHILD, runtime, str(threads), str(bundle), prompt, str(runs)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    if done.returncode:
        raise SystemExit(f"{runtime} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def matmul_gflops(threads: int) -> tuple[float, float]:
    """GFLOP/s of a large fp32 matmul, and of the (32 x 192) @ (192 x 768) kind in use."""
    import time

    import torch

    torch.set_num_threads(threads)
    rates = []
    for m, k, n, repeat in ((1024, 1024, 1024, 10), (32, 192, 768, 2000)):
        a, b = torch.randn(m, k), torch.randn(k, n)
        a @ b
        started = time.perf_counter()
        for _ in range(repeat):
            a @ b
        rates.append(2 * m * k * n * repeat / (time.perf_counter() - started) / 1e9)
    return rates[0], rates[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", default="1,2", help="thread counts to compare, e.g. 1,2")
    parser.add_argument("--bundle", type=Path, default=SHIPPED)
    parser.add_argument("--prompt", default=PROMPT)
    args = parser.parse_args()
    counts = [int(t) for t in args.threads.split(",")]
    results = {
        (rt, t): run_child(rt, t, args.bundle, args.prompt, args.runs)
        for t in counts
        for rt in RUNTIMES
    }
    columns = [(rt, t) for t in counts for rt in RUNTIMES]
    print(
        f"prompt: {args.prompt!r}; 16 candidates -> 4; median of {args.runs} runs after a warm-up"
    )
    header = "".join(f"{NAMES[rt] + f' {t}t':>16}" for rt, t in columns)
    print(f"{'figure':<30}{header}{'target':>12}")

    def row(name: str, key, fmt: str, target: str) -> None:
        values = "".join(f"{fmt.format(key(results[c])):>16}" for c in columns)
        print(f"{name:<30}{values}{target:>12}")

    row("request, median (s)", lambda r: statistics.median(r["times"]), "{:.3f}", "2.5 / 1.5")
    row("request, slowest (s)", lambda r: max(r["times"]), "{:.3f}", "")
    row("first preview, median (s)", lambda r: statistics.median(r["previews"]), "{:.3f}", "0.3")
    row("model load (s)", lambda r: r["load_s"], "{:.3f}", "1.0")
    row("imports before load (s)", lambda r: r["import_s"], "{:.3f}", "")
    row("peak memory (MB)", lambda r: r["peak_mb"], "{:.0f}", "1024")
    print(
        "devices: " + "; ".join(f"{NAMES[rt]} {t}t {results[rt, t]['device']}" for rt, t in columns)
    )

    def median(rt: str, t: int) -> float:
        return statistics.median(results[rt, t]["times"])

    for t in counts:
        print(
            f"ONNX Runtime speed-up, both {t} thread(s): "
            f"{median('pytorch', t) / median('onnx', t):.2f}x (target >= 1.5x)"
        )
    best = {rt: min(counts, key=lambda t, rt=rt: median(rt, t)) for rt in RUNTIMES}
    print(
        f"best vs best (PyTorch {best['pytorch']}t, ONNX {best['onnx']}t): "
        f"{median('pytorch', best['pytorch']) / median('onnx', best['onnx']):.2f}x"
    )
    flops = results["pytorch", counts[0]]["flops"]
    for t in counts:
        big, small = matmul_gflops(t)
        print(
            f"{t} thread(s): fp32 matmul {big:.1f} GFLOP/s (1024^3), {small:.1f} GFLOP/s "
            f"(32x192x768); a request is {flops / 1e9:.2f} GFLOP: "
            + ", ".join(f"{NAMES[rt]} {flops / median(rt, t) / 1e9:.1f} GFLOP/s" for rt in RUNTIMES)
        )


RUNTIMES = ("pytorch", "onnx")
NAMES = {"pytorch": "PyTorch", "onnx": "ONNX"}


if __name__ == "__main__":
    main()
