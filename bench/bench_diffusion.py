"""Stable-Diffusion backends side by side: diffusers called directly, our PyTorch backend,
our ONNX Runtime backend; load time per format, a request, peak memory.

    .venv/bin/python bench/bench_diffusion.py [--scale bench] [--runs 3] [--threads 1]

The model is built here with random weights (`tests/support/random_sd.py`, scale
"bench": a UNet of 64/128/256 channels, 128 x 128 images) and exported to ONNX; each
runtime then runs in a fresh process (its own imports and peak memory). A request: 2
images, 10 Euler steps, guidance 7, the same starting noise everywhere. Targets: our
PyTorch backend within 5% of diffusers direct; ONNX Runtime at least 3x faster than
PyTorch. The PyTorch backend also loads the model as one single-file checkpoint (the LDM
layout), with the model's own configuration standing in for a shipped one. Prints
figures; never asserts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "a red house on the green tree"

CHILD = r"""
import json, sys, time
mode, folder = sys.argv[1], sys.argv[2]
threads, runs, size = (int(x) for x in sys.argv[3:6])
started = time.perf_counter()
from pathlib import Path
from studio.api import GenerationRequest, ModelLibrary
request = GenerationRequest(sys.argv[6], seed=1, count=2, candidates=2, steps=10, guidance=7.0,
                            width=size, height=size)
class Ctx:
    cancelled = False
    device = "cpu"
    def check_cancelled(self): pass
    def progress(self, step, total, phase="steps"): pass
    def preview(self, image): pass
if mode == "direct":
    import torch
    torch.set_num_threads(threads)
    from sd_backends.backend import load_diffusers_folder, quiet_offline_libraries
    from sd_backends.noise import initial_noise
    quiet_offline_libraries()
    pipe = load_diffusers_folder(Path(folder), torch.float32)
    pipe.set_progress_bar_config(disable=True)
    loaded = time.perf_counter()
    scale = pipe.vae_scale_factor
    noise = torch.from_numpy(initial_noise([1, 2], (4, size // scale, size // scale)))
    def run():
        pipe(request.prompt, height=size, width=size, num_inference_steps=10, guidance_scale=7.0,
             num_images_per_prompt=2, latents=noise, output_type="np")
else:
    if mode in ("pytorch", "single"):
        import torch
        torch.set_num_threads(threads)
        from sd_backends.backend import DiffusionBackend
        backend = DiffusionBackend()
        if mode == "single":  # the bench model's own configuration stands in for SD 1.x's
            from sd_backends import single_file
            single_file.CONFIG_FOLDERS["SD 1.x"] = Path(sys.argv[7])
    else:
        from sd_backends.onnx_backend import DiffusionOnnxBackend
        backend = DiffusionOnnxBackend(threads=threads)
    backend.model_library = lambda: ModelLibrary([], [], Path(folder).parent / "hashes.json")
    backend.load(folder)
    loaded = time.perf_counter()
    def run():
        backend.generate(request, Ctx())
run()  # warm-up
times = []
for _ in range(runs):
    t = time.perf_counter(); run(); times.append(time.perf_counter() - t)
# VmHWM: this program's own peak (ru_maxrss would carry the parent's over exec)
peak = next(l for l in open("/proc/self/status") if l.startswith("VmHWM"))
peak_mb = int(peak.split()[1]) / 1024
print(json.dumps({"load": loaded - started, "times": times, "peak_mb": peak_mb}))
"""


def child(mode: str, folder: Path, threads: int, runs: int, size: int, config: str = "") -> dict:
    arguments = [mode, str(folder), str(threads), str(runs), str(size), PROMPT, config]
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"{mode} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="bench", choices=["tiny", "bench"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", default="1", help="comma-separated thread counts")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import torch

    from sd_backends.backend import load_diffusers_folder, quiet_offline_libraries
    from sd_backends.export_onnx import export
    from tests.support.random_sd import build_random_sd, save_single_file

    quiet_offline_libraries()
    with tempfile.TemporaryDirectory(prefix="studio-bench-sd-") as tmp:
        folder = build_random_sd(Path(tmp) / "model", scale=args.scale)
        export(load_diffusers_folder(folder, torch.float32), Path(tmp) / "model-onnx")
        single = save_single_file(folder, Path(tmp) / "model.safetensors")
        size = 128 if args.scale == "bench" else 64
        print(
            f"scale {args.scale}: {size}x{size}, 2 images, 10 Euler steps, guidance 7; median "
            f"of {args.runs} runs after a warm-up, each runtime in its own process"
        )
        for threads in (int(t) for t in args.threads.split(",")):
            found = {
                "diffusers direct": child("direct", folder, threads, args.runs, size),
                "our PyTorch": child("pytorch", folder, threads, args.runs, size),
                "our PyTorch, 1 file": child(
                    "single", single, threads, args.runs, size, str(folder)
                ),
                "our ONNX Runtime": child(
                    "onnx", Path(tmp) / "model-onnx", threads, args.runs, size
                ),
            }
            print(f"\n{threads} thread(s)")
            print(
                f"{'':<22}{'load (s)':>10}{'request (s)':>13}{'slowest (s)':>13}{'peak (MB)':>11}"
            )
            for name, f in found.items():
                print(
                    f"{name:<22}{f['load']:>10.2f}{statistics.median(f['times']):>13.3f}"
                    f"{max(f['times']):>13.3f}{f['peak_mb']:>11.0f}"
                )
            direct, ours, _, onnx = (statistics.median(f["times"]) for f in found.values())
            overhead = 100 * (ours / direct - 1)
            print(f"our PyTorch backend's overhead over diffusers: {overhead:+.1f}% (target <= 5%)")
            print(
                f"ONNX Runtime speed-up over our PyTorch backend: {ours / onnx:.2f}x (target >= 3x)"
            )


if __name__ == "__main__":
    main()
