"""The built-in model, PyTorch vs ONNX Runtime, side by side: load, first preview, a
default request end to end, peak memory, and FLOPs against what this CPU sustains.

    .venv/bin/python bench/bench_shapes_backends.py [--runs 5] [--threads 2] [--bundle DIR]

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
    from plugins.shapes.backend import ShapesBackend as Backend
else:
    from plugins.shapes.onnx_backend import ShapesOnnxBackend as Backend
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


def run_child(runtime: str, threads: int, bundle: Path, runs: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-c", CHILD, runtime, str(threads), str(bundle), PROMPT, str(runs)]
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
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bundle", type=Path, default=ROOT / "resources" / "shapes" / "model")
    args = parser.parse_args()
    results = {
        rt: run_child(rt, args.threads, args.bundle, args.runs) for rt in ("pytorch", "onnx")
    }
    print(f"prompt: {PROMPT!r}; 16 candidates -> 4; {args.runs} runs; {args.threads} threads")
    print(f"{'figure':<34}{'PyTorch':>12}{'ONNX Runtime':>15}{'target':>14}")

    def row(name: str, key, fmt: str, target: str) -> None:
        values = [fmt.format(key(results[rt])) for rt in ("pytorch", "onnx")]
        print(f"{name:<34}{values[0]:>12}{values[1]:>15}{target:>14}")

    row("request, median (s)", lambda r: statistics.median(r["times"]), "{:.3f}", "2.5 / 1.5")
    row("request, slowest (s)", lambda r: max(r["times"]), "{:.3f}", "")
    row("first preview, median (s)", lambda r: statistics.median(r["previews"]), "{:.3f}", "0.3")
    row("model load (s)", lambda r: r["load_s"], "{:.3f}", "1.0")
    row("imports before load (s)", lambda r: r["import_s"], "{:.3f}", "")
    row("peak memory (MB)", lambda r: r["peak_mb"], "{:.0f}", "1024")
    row("device", lambda r: r["device"], "{}", "")
    speedup = statistics.median(results["pytorch"]["times"]) / statistics.median(
        results["onnx"]["times"]
    )
    print(f"ONNX Runtime speed-up: {speedup:.2f}x (target >= 1.5x)")
    flops = results["pytorch"]["flops"]
    big, small = matmul_gflops(args.threads)
    for rt in ("pytorch", "onnx"):
        achieved = flops / statistics.median(results[rt]["times"]) / 1e9
        print(f"{rt}: {flops / 1e9:.2f} GFLOP per request -> {achieved:.1f} GFLOP/s achieved")
    print(f"this CPU's fp32 matmul: {big:.1f} GFLOP/s (1024^3), {small:.1f} GFLOP/s (32x192x768)")


if __name__ == "__main__":
    main()
