"""Image prompts on the built-in model, side by side: text only vs a masked edit vs a
variation, 16 candidates each, PyTorch and ONNX Runtime.

    .venv/bin/python bench/bench_image_prompts.py [--runs 5] [--threads 1] [--bundle DIR]

One process, both runtimes loaded, the runs interleaved (text, edit, variation, on each
runtime in turn) so that drift on a shared machine hits every column alike; the best run
shows what is left when other jobs get in the way less. Time is a
whole `generate`: planning the edit, sampling, decoding, compositing and ranking. A given
token still runs through the transformer (its keys feed the later ones) and through its
head (its log-probability counts in the ranking); only the draw and the top-k are skipped,
so an edit should cost about what text alone does, never more. Target: edit <= text.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from shapes_backend.model.bundle import SHIPPED
from shapes_backend.model.common import ImagePrompt
from shapes_backend.model.edit import FREE, plan_edit

PROMPT = "a red circle above a blue square on a white background"
CANDIDATES = 16


def input_picture() -> np.ndarray:
    """The picture the edits start from: a red circle (top) and a blue square (bottom)."""
    from shapes_backend.scene import PromptSpec, Scene, SceneObject
    from shapes_lab.render import render_array

    objects = (SceneObject("circle", "red", 18, 23, 4), SceneObject("square", "blue", 20, 22, 38))
    return render_array(Scene("relation", "white", objects, PromptSpec(objects=())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--bundle", type=Path, default=SHIPPED)
    args = parser.parse_args()

    import torch

    from shapes_backend.model.onnx_pipeline import OnnxShapesPipeline
    from shapes_backend.model.pipeline import ShapesPipeline

    torch.set_num_threads(args.threads)
    runtimes = {
        "PyTorch": ShapesPipeline.load(args.bundle),
        "ONNX": OnnxShapesPipeline(args.bundle, prefer_cuda=False, threads=args.threads),
    }
    image = input_picture()
    mask = np.zeros((64, 64), np.float32)
    mask[32:] = 1.0  # the bottom half repainted: a completion of the top half
    edits: dict[str, ImagePrompt | None] = {
        "text only": None,
        "masked edit (bottom half)": ImagePrompt(image, mask),
        "variation, strength 0.3": ImagePrompt(image, strength=0.3),
    }
    tokenizer = runtimes["ONNX"].tokenizers.image
    for runtime in runtimes.values():  # warm-up: first calls allocate and load
        for edit in edits.values():
            runtime.generate(PROMPT, CANDIDATES, 0, edit=edit)
    # (runtime, request) -> wall and CPU seconds of each run
    wall: dict[tuple[str, str], list[float]] = {(r, e): [] for r in runtimes for e in edits}
    cpu: dict[tuple[str, str], list[float]] = {(r, e): [] for r in runtimes for e in edits}
    same = True
    for run in range(args.runs):
        for edit_name, edit in edits.items():
            images = []
            for name, runtime in runtimes.items():
                started, started_cpu = time.perf_counter(), time.process_time()
                result = runtime.generate(PROMPT, CANDIDATES, run + 1, edit=edit)
                wall[name, edit_name].append(time.perf_counter() - started)
                cpu[name, edit_name].append(time.process_time() - started_cpu)
                images.append(result.images)
            same &= all(np.array_equal(images[0], other) for other in images[1:])

    print(
        f"prompt: {PROMPT!r}; {CANDIDATES} candidates, ranked; {args.threads} thread(s); "
        f"{args.runs} runs after a warm-up; seconds as wall median / wall best / CPU median "
        "(CPU time: what other jobs on a shared machine change least)"
    )
    print(f"{'request':<28}{'drawn tokens':>14}" + "".join(f"{n:>24}" for n in runtimes))
    for edit_name, edit in edits.items():
        drawn = 1.0
        if edit is not None:
            plan = plan_edit(tokenizer, edit, CANDIDATES, PROMPT)
            tokens = np.concatenate([plan.backgrounds[:, None], plan.kinds], axis=1)
            drawn = float((tokens == FREE).mean())
        figures = "".join(
            f"{statistics.median(wall[k]):.3f} / {min(wall[k]):.3f} / "
            f"{statistics.median(cpu[k]):.3f}".rjust(24)
            for k in ((name, edit_name) for name in runtimes)
        )
        print(f"{edit_name:<28}{drawn:>14.0%}{figures}")

    def ratio(times: dict[tuple[str, str], list[float]], name: str, edit_name: str) -> float:
        return statistics.median(times[name, edit_name]) / statistics.median(
            times[name, "text only"]
        )

    for name in runtimes:
        ratios = ", ".join(
            f"{e}: wall {ratio(wall, name, e):.2f}x, CPU {ratio(cpu, name, e):.2f}x"
            for e in list(edits)[1:]
        )
        print(f"{name} against text only: {ratios} (target <= 1.00x)")
    print(f"both runtimes drew the same pixels in every run: {same}")


if __name__ == "__main__":
    main()
