"""ControlNet and LoRA, PyTorch and ONNX Runtime side by side: what each adds to a request.

    .venv/bin/python bench/bench_sd_addons.py [--size 128] [--runs 3] [--threads 1]

The model is the "bench" one of `tests/support/random_sd.py` (random weights, a UNet of
64/128/256 channels) with its native size set to --size; a ControlNet made from its UNet
(`tests/support/random_controlnets.py`, every weight random) and two kohya LoRAs of rank
16 over its attention and text-encoder layers (`tests/support/random_loras.py`); the
model and the ControlNet exported to ONNX. Every figure comes from a fresh process per
runtime and task, started as the CLI's worker is (its own imports and memory), with
requests through the backend as the engine makes them: one image, 20 Euler steps,
guidance 7, --size square.

(a) text-to-image with one ControlNet (a canny map, weight 1) vs without: median of
    --runs after a warm-up. Target: <= 60 % extra.
(b) LoRAs: after a warm-up without any, the first request with a set of two LoRAs, the
    same set again, and back to none, each against the median request without: what
    the first use of a set costs (target <= 1 s PyTorch, <= 2 s ONNX Runtime), and that
    a set in use costs nothing per request. Back to none must give the first image again,
    exactly (checked and printed).

Threads are set explicitly (torch.set_num_threads, ONNX Runtime's intra-op threads).
Prints figures; never asserts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "a red house on the green tree"

CHILD = r"""
import json, sys, time
from pathlib import Path
runtime, task, model, controlnet, loras, control_map = sys.argv[1:7]
threads, runs, size = (int(x) for x in sys.argv[7:10])
import numpy as np
from studio.api import Control, GenerationRequest, Lora, ModelLibrary
from studio.core.inputs import InputStore
started = time.perf_counter()
if runtime == "pytorch":
    import torch
    torch.set_num_threads(threads)
    from sd_backends.backend import DiffusionBackend
    backend = DiffusionBackend()
else:
    from sd_backends.onnx_backend import DiffusionOnnxBackend
    backend = DiffusionOnnxBackend(threads=threads)
root = Path(model).parent
backend.model_library = lambda: ModelLibrary([root], [], root / "hashes.json")
backend.load(model)
class Ctx:
    cancelled = False
    device = "cpu"
    def check_cancelled(self): pass
    def progress(self, step, total, phase="steps"): pass
    def preview(self, image): pass
fields = dict(seed=1, count=1, steps=20, guidance=7.0, width=size, height=size)
plain = GenerationRequest(prompt := "a red house on the green tree", **fields)
def timed(request):
    t = time.perf_counter()
    made = backend.generate(request, Ctx())
    return time.perf_counter() - t, made[0].image
figures = {}
first_image = timed(plain)[1]  # warm-up
times = [timed(plain)[0] for _ in range(runs)]
figures["plain"] = times
if task == "control":
    store = InputStore(root / f"inputs-{runtime}")
    picture = store.add(Path(control_map))
    control = Control(controlnet, picture, "none", map=picture)
    with_control = plain.replace(controls=(control,))
    timed(with_control)  # warm-up: the ControlNet loads
    figures["control"] = [timed(with_control)[0] for _ in range(runs)]
else:
    names = loras.split(",")
    with_loras = plain.replace(loras=tuple(Lora(name, 0.8) for name in names))
    figures["first"], _ = timed(with_loras)
    figures["again"] = [timed(with_loras)[0] for _ in range(runs)]
    figures["back"], image = timed(plain)
    figures["back_exact"] = bool(np.array_equal(np.asarray(image), np.asarray(first_image)))
print(json.dumps(figures))
"""


def child(runtime: str, task: str, paths: dict[str, Path], args: argparse.Namespace) -> dict:
    model = paths["onnx" if runtime == "onnx" else "model"]
    controlnet = paths["controlnet-onnx" if runtime == "onnx" else "controlnet"]
    arguments = [runtime, task, str(model), str(controlnet), paths["loras"], str(paths["map"])]
    arguments += [str(args.threads), str(args.runs), str(args.size)]
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:  # reported with the figures; the others still run
        why = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        print(f"{runtime} {task} failed: {why[0]}", file=sys.stderr)
        return {"error": why[0]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def build(folder: Path, size: int) -> dict:
    """The bench model, its ControlNet and LoRAs, exported, and a control map."""
    import torch
    from PIL import Image, ImageDraw
    from support.random_controlnets import build_random_controlnet, save_controlnet_folder
    from support.random_loras import write_kohya
    from support.random_sd import build_random_sd

    from sd_backends.backend import load_diffusers_folder, quiet_offline_libraries
    from sd_backends.export_onnx import export, export_controlnet

    quiet_offline_libraries()
    model = build_random_sd(folder / "model", scale="bench")
    vae = json.loads((model / "vae" / "config.json").read_text())
    scale = 2 ** (len(vae["block_out_channels"]) - 1)
    unet = model / "unet" / "config.json"
    unet.write_text(json.dumps(json.loads(unet.read_text()) | {"sample_size": size // scale}))
    net = build_random_controlnet(model)
    controlnet = save_controlnet_folder(net, folder / "controlnet")
    pipeline = load_diffusers_folder(model, torch.float32)
    with warnings.catch_warnings():  # the tracer's notes on shapes it treats as constants
        warnings.simplefilter("ignore")
        onnx = export(pipeline, folder / "model-onnx", "unknown")
        controlnet_onnx = export_controlnet(net, folder / "controlnet-onnx", "unknown")
    loras = [write_kohya(model, folder / f"style{i}.safetensors", rank=16, seed=i) for i in (1, 2)]
    drawing = Image.new("RGB", (size, size), "black")
    pen = ImageDraw.Draw(drawing)
    for i in range(4):  # a room's lines: walls, a window
        box = (i * size // 10, i * size // 10, size - i * size // 8, size - 1)
        pen.rectangle(box, outline="white")
    path = folder / "map.png"
    drawing.save(path)
    return {
        "model": model,
        "onnx": onnx,
        "controlnet": controlnet,
        "controlnet-onnx": controlnet_onnx,
        "loras": ",".join(str(p) for p in loras),
        "map": path,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="the model's native size")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runtimes", default="pytorch,onnx", help="comma-separated")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))  # the random models' builders: tests/support
    with tempfile.TemporaryDirectory(prefix="studio-bench-sd-addons-") as tmp:
        paths = build(Path(tmp), args.size)
        print(
            f"bench model at {args.size}x{args.size}; 1 image, 20 Euler steps, guidance 7; "
            f"{args.threads} thread(s); median of {args.runs} after a warm-up, a fresh "
            "process for each task"
        )
        found = {
            runtime: {task: child(runtime, task, paths, args) for task in ("control", "loras")}
            for runtime in args.runtimes.split(",")
        }
        report(found)


def report(found: dict[str, dict[str, dict]]) -> None:
    def median(values: list[float] | None) -> float | None:
        return statistics.median(values) if values else None

    print(f"\n{'':<40}{'PyTorch':>12}{'ONNX':>12}")

    def row(name: str, task: str, value) -> None:
        cells = []
        for runtime in ("pytorch", "onnx"):
            figures = found.get(runtime, {}).get(task, {})
            result = value(figures) if figures and "error" not in figures else None
            cells.append(f"{result:>12}" if isinstance(result, str) else f"{'-':>12}")
        print(f"{name:<40}{''.join(cells)}")

    def seconds(key: str):
        return lambda f: f"{median(f[key]):.3f}"

    row("text-to-image (s)", "control", seconds("plain"))
    row("  with one ControlNet (s)", "control", seconds("control"))
    row(
        "  ControlNet extra (target <= 60 %)",
        "control",
        lambda f: f"{100 * (median(f['control']) / median(f['plain']) - 1):+.0f} %",
    )
    row(
        "LoRA set, first use extra (s)",
        "loras",
        lambda f: f"{f['first'] - median(f['plain']):+.3f}",
    )
    row(
        "  same set again, extra (s)",
        "loras",
        lambda f: f"{median(f['again']) - median(f['plain']):+.3f}",
    )
    row("  back to none, extra (s)", "loras", lambda f: f"{f['back'] - median(f['plain']):+.3f}")
    row("  back to none, same image", "loras", lambda f: "exact" if f["back_exact"] else "DIFFERS")
    print("\ntargets: first use of a LoRA set <= 1 s (PyTorch), <= 2 s (ONNX Runtime)")


if __name__ == "__main__":
    main()
