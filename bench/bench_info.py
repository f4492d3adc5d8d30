"""Time `studio info FILE` as a user runs it: a whole new process, on typical files.

    .venv/bin/python bench/bench_info.py [--runs 7]

Typical files: 1024x1024 pictures of noise (so the pixel data is a realistic 3-4 MB that
the reader must skip) written as A1111 (PNG, JPEG), ComfyUI (PNG with its graphs) and
NovelAI (PNG, chunks) write them; and one with nothing but text hidden in its alpha
channel, where the pixels must be decoded. Prints median and max; never asserts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.foreign_images import (  # noqa: E402
    A1111_SETTINGS,
    COMFY_WIDGETS,
    a1111_text,
    basic_graph,
    novelai_chunks,
    novelai_comment,
)
from support.foreign_writers import (  # noqa: E402
    comfyui_workflow,
    jpeg_with_app1,
    piexif_user_comment,
    pillow_png,
    png_with_chunks,
    text_chunk,
    with_stealth,
)

TARGET_S = 0.2
STUDIO = Path(sys.executable).with_name("studio")


def typical_files(folder: Path) -> dict[str, Path]:
    noise = Image.effect_noise((1024, 1024), 64).convert("RGB")
    text = a1111_text("a lighthouse on a cliff at dusk, oil painting", "blurry", A1111_SETTINGS)
    graph = basic_graph()
    workflow = json.dumps(comfyui_workflow(graph, COMFY_WIDGETS))
    chunks = novelai_chunks(novelai_comment(), "NovelAI Diffusion V4.5 4BDE2A90", "1girl")
    files = {
        "A1111 PNG": pillow_png([("parameters", text)], noise),
        "A1111 JPEG": jpeg_with_app1(piexif_user_comment(text), noise),
        "ComfyUI PNG": pillow_png([("prompt", json.dumps(graph)), ("workflow", workflow)], noise),
        "NovelAI PNG": png_with_chunks([text_chunk(k, v, "utf-8") for k, v in chunks], noise),
    }
    hidden = with_stealth(noise.convert("RGBA"), text)
    paths = {}
    for name, data in files.items():
        paths[name] = folder / (name.replace(" ", "_") + (".jpg" if "JPEG" in name else ".png"))
        paths[name].write_bytes(data)
    paths["hidden in alpha (pixels decoded)"] = folder / "stealth.png"
    hidden.save(paths["hidden in alpha (pixels decoded)"])
    return paths


def time_info(path: Path, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        done = subprocess.run([str(STUDIO), "info", str(path)], capture_output=True)
        times.append(time.perf_counter() - began)
        assert done.returncode == 0, done.stderr
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        files = typical_files(Path(folder))
        print(f"`studio info FILE`, whole process, {args.runs} runs (target ≤ {TARGET_S} s):")
        for name, path in files.items():
            times = time_info(path, args.runs)
            size = path.stat().st_size / 2**20
            print(
                f"  {name:34} {size:4.1f} MB  median {statistics.median(times):.3f} s, "
                f"max {max(times):.3f} s"
            )


if __name__ == "__main__":
    main()
