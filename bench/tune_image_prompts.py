"""Tune the built-in model's image-prompt settings on a tuning edit set, never the eval set.

    .venv/bin/python bench/tune_image_prompts.py [--per-kind 8] [--bias 2,3,4] [--kinds variation]

The tuning set is made like the shipped edit set (`shapes_lab.make_edits`) from another
seed, so its scenes and prompts differ. Each edit runs through the ONNX pipeline directly
(16 candidates, the best 4 kept, 1 thread): the judge's pass rate, preservation outside
the snapped mask, and for variations the patch tokens kept and how many shown images are
the input itself. Prints one row per setting, side by side.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from shapes_backend.model import edit as edit_rules
from shapes_backend.model.bundle import SHIPPED
from shapes_backend.model.common import ImagePrompt, SamplingOptions
from shapes_backend.model.onnx_pipeline import OnnxShapesPipeline
from shapes_backend.parser import parse_prompt
from shapes_lab.edit_set import VARIATION
from shapes_lab.judge import Judge
from shapes_lab.make_edits import make_edit_set
from shapes_lab.render import render_array

TUNING_SEED = 20261206  # the shipped set uses make_edits.SEED


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-kind", type=int, default=8)
    parser.add_argument("--bias", default=str(edit_rules.PRIOR_BIAS))
    parser.add_argument("--kinds", default="", help="comma-separated kinds (default: all)")
    parser.add_argument("--shown", type=int, default=4)
    parser.add_argument("--candidates", type=int, default=16)
    parser.add_argument("--temperature", default="0.3", help="comma-separated: one row each")
    args = parser.parse_args()
    judge = Judge.load()
    edits = make_edit_set(TUNING_SEED, args.per_kind, max(1, args.per_kind // 3), judge)
    if args.kinds:
        edits = [e for e in edits if e.kind in args.kinds.split(",")]
    pipeline = OnnxShapesPipeline(SHIPPED, prefer_cuda=False, threads=1)
    tokenizer = pipeline.tokenizers.image
    settings = [
        (float(b), float(t)) for b in args.bias.split(",") for t in args.temperature.split(",")
    ]
    for bias, temperature in settings:
        edit_rules.PRIOR_BIAS = bias
        options = SamplingOptions(temperature=temperature)
        rows: dict[str, list[float]] = {}
        started = time.perf_counter()
        for number, e in enumerate(edits):
            source = render_array(e.source)
            prompt = ImagePrompt(source, e.mask_array(), e.strength)
            made = pipeline.generate(e.prompt, args.candidates, number, options, edit=prompt)
            shown = made.images[: args.shown]
            spec = parse_prompt(e.prompt)
            passed = [judge.check(image, spec).passed for image in shown]
            key = f"{e.kind}/{e.split}"
            rows.setdefault(key + " pass", []).extend(passed)
            if e.kind == VARIATION:
                tokens = tokenizer.encode(source)[1]
                kept = [np.mean(tokenizer.encode(image)[1] == tokens) for image in shown]
                rows.setdefault(key + " kept", []).extend(kept)
                same = [
                    np.array_equal(image, tokenizer.decode(*tokenizer.encode(source)))
                    for image in shown
                ]
                rows.setdefault(key + " same as input", []).extend(same)
                rows.setdefault(key + " distinct", []).append(len({i.tobytes() for i in shown}))
            else:
                keep = ~edit_rules.snapped_mask(tokenizer, prompt)
                ok = [np.array_equal(image[keep], source[keep]) for image in shown]
                rows.setdefault(key + " preserved", []).extend(ok)
        seconds = time.perf_counter() - started
        print(
            f"\nprior bias {bias}, temperature {temperature} ({len(edits)} edits, {seconds:.0f} s)"
        )
        for name, values in sorted(rows.items()):
            print(f"  {name:<34} {np.mean(values):.3f}  (n={len(values)})")


if __name__ == "__main__":
    main()
