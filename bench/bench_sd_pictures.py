"""Stable-Diffusion pictures, PyTorch and ONNX Runtime side by side: what img2img and
only-masked inpainting cost beside text-to-image.

    .venv/bin/python bench/bench_sd_pictures.py [--size 128] [--runs 3] [--threads 1]

The model is the "bench" one of `tests/support/random_sd.py` (random weights, a UNet of
64/128/256 channels) with its native size set to --size (the UNet's `sample_size`), so a
picture is generated at the size text-to-image runs at; it is exported to ONNX. Every
figure comes from a fresh process per runtime and task (its own imports and memory):
the median of --runs requests after a warm-up, one image each, 20 Euler steps, guidance 7.

(a) text-to-image vs img2img at strength 0.5 (the picture --size square): target
    img2img <= 65 % of text-to-image's time.
(b) only-masked inpainting of a 400 x 300 box in a 4000 x 3000 photo (a JPEG, with a
    PNG mask) vs text-to-image at the size the inpainting generates at: time within
    15 %, peak memory within 20 %. Memory: the process's peak resident set (VmHWM),
    reset (/proc/self/clear_refs) after loading and the warm-up, so it is the requests'
    peak over the loaded model; "rss" is what the process held before them. Reading
    the photo into a request and saving a 12-MP result as PNG are timed apart.
(c) ONNX Runtime's speed over PyTorch's for each path: target >= 1.0x.

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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "a red house on the green tree"
PHOTO, BOX = (4000, 3000), (2400, 1200, 2800, 1500)  # the box to repaint: 400 x 300

CHILD = r"""
import json, sys, time
from pathlib import Path
runtime, task, folder, prompt = sys.argv[1:5]
threads, runs, width, height = (int(x) for x in sys.argv[5:9])
photo, mask_path = sys.argv[9:11]
import numpy as np
from PIL import Image
from studio.api import GenerationRequest, ModelLibrary
from studio.core.inputs import InputStore
if runtime == "pytorch":
    import torch
    torch.set_num_threads(threads)
    from sd_backends.backend import DiffusionBackend
    backend = DiffusionBackend()
else:
    from sd_backends.onnx_backend import DiffusionOnnxBackend
    backend = DiffusionOnnxBackend(threads=threads)
backend.model_library = lambda: ModelLibrary([], [], Path(folder).parent / "hashes.json")
backend.load(folder)
class Ctx:
    cancelled = False
    device = "cpu"
    def check_cancelled(self): pass
    def progress(self, step, total, phase="steps"): pass
    def preview(self, image): pass
fields = dict(seed=1, count=1, steps=20, guidance=7.0, width=width, height=height)
store = InputStore(Path(folder).parent / f"inputs-{runtime}-{task}")
figures = {}
if task == "img2img":  # a smooth picture, as photos are
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 // width, y * 255 // height, (x + y) * 127 // (width + height)], -1)
    fields |= dict(image=store.add(Image.fromarray(pixels.astype(np.uint8))), strength=0.5)
elif task == "photo":
    started = time.perf_counter()
    picture, mask = store.add(Path(photo)), store.add(Path(mask_path), mask=True)
    figures["load_s"] = time.perf_counter() - started
    fields |= dict(image=picture, mask=mask, options={"inpaint_area": "masked"})
request = GenerationRequest(prompt, **fields)
made = backend.generate(request, Ctx())  # warm-up
rss = next(l for l in open("/proc/self/status") if l.startswith("VmRSS"))
open("/proc/self/clear_refs", "w").write("5")  # the peak from here on
times = []
for _ in range(runs):
    made = None  # as the app does: a request's results are stored, then dropped
    t = time.perf_counter()
    made = backend.generate(request, Ctx())
    times.append(time.perf_counter() - t)
if task == "photo":  # decoding the request's PNG, which the request's time includes
    started = time.perf_counter()
    request.image.open()
    figures["decode_s"] = time.perf_counter() - started
peak = next(l for l in open("/proc/self/status") if l.startswith("VmHWM"))
if task == "photo":
    started = time.perf_counter()
    Image.fromarray(made[0].image).save(Path(folder).parent / f"result-{runtime}.png")
    figures["save_s"] = time.perf_counter() - started
figures |= {"times": times, "peak_mb": int(peak.split()[1]) / 1024,
            "rss_mb": int(rss.split()[1]) / 1024, "shape": list(made[0].image.shape)}
print(json.dumps(figures))
"""


def child(
    runtime: str,
    task: str,
    folder: Path,
    args: argparse.Namespace,
    size: tuple[int, int],
    photo: Path,
    mask: Path,
) -> dict:
    arguments = [runtime, task, str(folder), PROMPT, str(args.threads), str(args.runs)]
    arguments += [str(size[0]), str(size[1]), str(photo), str(mask)]
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:  # reported with the figures; the others still run
        why = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        if done.returncode < 0:
            why = [f"killed by signal {-done.returncode} (out of memory?)"]
        print(f"{runtime} {task} failed: {why[0]}", file=sys.stderr)
        return {"error": why[0]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def make_photo(folder: Path) -> tuple[Path, Path]:
    """A 4000 x 3000 JPEG (smooth light and some grain, as a camera's) and its mask."""
    import numpy as np
    from PIL import Image

    width, height = PHOTO
    y, x = np.ogrid[0:height, 0:width]
    pixels = np.random.default_rng(0).integers(0, 24, (height, width, 3), dtype=np.uint8)
    pixels[..., 0] += (x * 200 // width + 20).astype(np.uint8)
    pixels[..., 1] += (y * 200 // height + 20).astype(np.uint8)
    pixels[..., 2] += 120
    photo, mask = folder / "photo.jpg", folder / "mask.png"
    Image.fromarray(pixels).save(photo, quality=92)
    painted = Image.new("L", PHOTO, 0)
    painted.paste(255, BOX)
    painted.save(mask)
    return photo, mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="the model's native size")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runtimes", default="pytorch,onnx", help="comma-separated")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import torch

    from sd_backends import pictures
    from sd_backends.backend import load_diffusers_folder, quiet_offline_libraries
    from sd_backends.export_onnx import export
    from sd_backends.numpy_pictures import generation_geometry
    from tests.support.random_sd import build_random_sd

    quiet_offline_libraries()
    with tempfile.TemporaryDirectory(prefix="studio-bench-sd-pictures-") as tmp:
        folder = build_random_sd(Path(tmp) / "model", scale="bench")
        vae = json.loads((folder / "vae" / "config.json").read_text())
        scale = 2 ** (len(vae["block_out_channels"]) - 1)  # image pixels per latent pixel
        unet = folder / "unet" / "config.json"
        config = json.loads(unet.read_text()) | {"sample_size": args.size // scale}
        unet.write_text(json.dumps(config))
        onnx = export(load_diffusers_folder(folder, torch.float32), Path(tmp) / "model-onnx")
        photo, mask = make_photo(Path(tmp))
        native, multiple = generation_geometry(json.loads((onnx / "model_index.json").read_text()))
        from PIL import Image

        with Image.open(mask) as painted:
            hard = pictures.mask_array(painted, PHOTO)
        canvas = pictures.plan(PHOTO, native, multiple, hard, pictures.MASKED)
        square = (args.size, args.size)
        print(
            f"bench model, native {native} px; 1 image, 20 Euler steps, guidance 7; "
            f"{args.threads} thread(s); median of {args.runs} after a warm-up, a fresh "
            "process for each figure"
        )
        found: dict[str, dict[str, dict]] = {}
        runtimes = (("pytorch", folder), ("onnx", onnx))
        for runtime, model in (r for r in runtimes if r[0] in args.runtimes.split(",")):
            found[runtime] = {
                "text": child(runtime, "text", model, args, square, photo, mask),
                "img2img": child(runtime, "img2img", model, args, square, photo, mask),
                "text at gen": child(runtime, "text", model, args, canvas.generation, photo, mask),
                "photo": child(runtime, "photo", model, args, PHOTO, photo, mask),
            }
        report(found, args, canvas)


def report(found: dict[str, dict[str, dict]], args: argparse.Namespace, canvas) -> None:
    """The figures side by side; a figure whose process failed shows as "failed", and
    what depends on it is left out."""

    def median(f: dict | None) -> float | None:
        return statistics.median(f["times"]) if f and "times" in f else None

    def cell(value: float | None, width: int, digits: int) -> str:
        return f"{value:>{width}.{digits}f}" if value is not None else f"{'failed':>{width}}"

    gen = "x".join(map(str, canvas.generation))
    region = canvas.region
    print(f"\nthe photo's region {region[2] - region[0]}x{region[3] - region[1]} at {region[:2]}")
    print(f"generates at {gen}\n")
    header = f"{'':<34}{'PyTorch (s)':>12}{'ONNX (s)':>10}{'ONNX x':>8}"
    print(header + f"{'peak MB torch':>15}{'peak MB onnx':>14}")
    names = {
        "text": f"text-to-image {args.size}x{args.size}",
        "img2img": f"img2img 0.5 {args.size}x{args.size}",
        "text at gen": f"text-to-image {gen}",
        "photo": "inpaint only-masked, 12-MP photo",
    }
    for task, name in names.items():
        torch_, onnx = found.get("pytorch", {}).get(task), found.get("onnx", {}).get(task)
        t, o = median(torch_), median(onnx)
        speed = t / o if t is not None and o is not None else None
        peaks = [f.get("peak_mb") if f else None for f in (torch_, onnx)]
        print(
            f"{name:<34}{cell(t, 12, 3)}{cell(o, 10, 3)}{cell(speed, 8, 2)}"
            f"{cell(peaks[0], 15, 0)}{cell(peaks[1], 14, 0)}"
        )
    print()
    for runtime, figures in found.items():
        times = {task: median(f) for task, f in figures.items()}
        if None in times.values():
            print(f"{runtime}: a figure failed, no ratios")
            continue
        share = 100 * times["img2img"] / times["text"]
        extra = 100 * (times["photo"] / times["text at gen"] - 1)
        memory = 100 * (figures["photo"]["peak_mb"] / figures["text at gen"]["peak_mb"] - 1)
        print(
            f"{runtime}: (a) img2img at 0.5 costs {share:.0f} % of text-to-image "
            f"(target <= 65 %); (b) the photo's inpainting {extra:+.0f} % time "
            f"(target within 15 %), {memory:+.0f} % peak memory (target within 20 %; "
            f"before the requests {figures['photo']['rss_mb']:.0f} MB vs "
            f"{figures['text at gen']['rss_mb']:.0f} MB); reading the photo into a "
            f"request {figures['photo']['load_s']:.2f} s, saving the 12-MP result as PNG "
            f"{figures['photo']['save_s']:.2f} s (apart); the request decodes its PNG in "
            f"{figures['photo']['decode_s']:.2f} s (inside its time)"
        )
    speeds = []
    for task in ("img2img", "photo"):
        t = median(found.get("pytorch", {}).get(task))
        o = median(found.get("onnx", {}).get(task))
        if t is not None and o is not None:
            speeds.append(f"{task} {t / o:.2f}x")
    if speeds:
        print("(c) ONNX Runtime over PyTorch (target >= 1.0x): " + ", ".join(speeds))


if __name__ == "__main__":
    main()
