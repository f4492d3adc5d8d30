"""`studio data render` and `studio eval`: the Shapes world's commands.

Registered through the `studio.commands` entry-point group; imported when the CLI
builds its parser, so keep this module light (heavy imports inside the commands).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from shapes_backend import world
from studio.api import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    JobState,
    RequestError,
    emit,
    open_core,
)


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    data = commands.add_parser("data", help="Shapes training data")
    verbs = data.add_subparsers(dest="verb", required=True, metavar="VERB")
    render = verbs.add_parser("render", parents=[common], help="write a dataset shard")
    render.add_argument("--count", type=int, required=True)
    render.add_argument("--seed", type=int, default=0)
    render.add_argument("--out", type=Path, required=True)
    render.add_argument("--kind", choices=world.KINDS, help="only this scene kind")
    render.add_argument(
        "--include-held-out", action="store_true", help="let the held-out colour-shape pairs appear"
    )
    render.set_defaults(run=cmd_data_render)

    ev = commands.add_parser("eval", parents=[common], help="score a backend on Shapes prompts")
    ev.add_argument(
        "--ground-truth",
        action="store_true",
        help="score the judge itself on freshly drawn scenes (its upper bound)",
    )
    ev.add_argument("--per-kind", type=int, default=200, help="scenes per kind (--ground-truth)")
    ev.add_argument("--prompts", type=Path, help="prompt file (default: the shipped set)")
    ev.add_argument(
        "--edits", action="store_true", help="score image-prompt edits and variations instead"
    )
    ev.add_argument("--edit-set", type=Path, help="edit set (--edits; default: the shipped set)")
    ev.add_argument(
        "--limit", type=int, help="at most this many prompts (or edits) per kind and split"
    )
    ev.add_argument("--backend")
    ev.add_argument("--model")
    ev.add_argument("--count", type=int, default=4, help="images per prompt")
    ev.add_argument("--candidates", type=int, help="candidates sampled for ranking")
    ev.add_argument("--seed", type=int, default=0)
    ev.set_defaults(run=cmd_eval)


def cmd_data_render(args: argparse.Namespace) -> int:
    from shapes_lab.dataset import write_shard

    if args.count < 1:
        raise CliError("--count must be at least 1", EXIT_USAGE)
    kinds = [args.kind] if args.kind else world.KINDS
    started = time.perf_counter()
    try:
        annotations = write_shard(
            args.out, args.count, args.seed, kinds=kinds, include_held_out=args.include_held_out
        )
    except OSError as error:
        raise CliError(f"could not write the shard: {error}") from None
    seconds = time.perf_counter() - started
    data = {"annotations": str(annotations), "count": args.count, "seconds": round(seconds, 3)}
    emit(args, data, f"wrote {args.count} scenes to {args.out} ({args.count / seconds:.0f}/s)")
    return EXIT_OK


def cmd_eval(args: argparse.Namespace) -> int:
    from shapes_lab.judge import Judge

    judge = Judge.load()
    if args.ground_truth:
        return _eval_ground_truth(args, judge)
    if args.edits:
        return _eval_edits(args, judge)
    return _eval_backend(args, judge)


def _eval_ground_truth(args: argparse.Namespace, judge: Any) -> int:
    """The judge's upper bound: its pass rate on freshly drawn scenes, and how often it
    passes the same images against a clearly wrong prompt."""
    from shapes_lab.judge import score_kinds

    rows = score_kinds(judge, args.per_kind, args.seed)
    mean = sum(r.ground_truth_accuracy for r in rows) / len(rows)
    data: dict[str, Any] = {"overall": {"score": round(mean, 4)}}
    for r in rows:
        data[r.kind] = {
            "score": round(r.ground_truth_accuracy, 4),
            "false_pass_rate": round(r.false_pass_rate, 4),
            "images": r.images,
        }
    lines = [
        f"judge on {args.per_kind} ground-truth scenes per kind",
        f"{'kind':<10}{'accuracy':>10}{'false pass':>12}",
    ]
    lines += [
        f"{r.kind:<10}{r.ground_truth_accuracy:>10.3f}{r.false_pass_rate:>12.3f}" for r in rows
    ]
    lines.append(f"{'overall':<10}{mean:>10.3f}")
    emit(args, data, "\n".join(lines))
    return EXIT_OK


def _eval_backend(args: argparse.Namespace, judge: Any) -> int:
    from PIL import Image

    from shapes_lab.evaluate import DEFAULT_PROMPTS, evaluate_images, load_prompts

    path = args.prompts or DEFAULT_PROMPTS
    try:
        prompts = _limit(load_prompts(path), args.limit)
    except (OSError, ValueError) as error:
        raise CliError(f"cannot read prompts: {error}", EXIT_USAGE) from None
    with _scratch_core(args) as (core, candidates):

        def generate(prompt: str, seed: int, ranked: bool) -> list[Image.Image]:
            shown = candidates if ranked else args.count
            return _generate(core, args, prompt, seed=seed, candidates=shown)

        started = time.perf_counter()
        report = evaluate_images(
            prompts,
            generate,
            _checker(judge),
            seed=args.seed,
            progress=_progress(args, len(prompts), "prompts"),
        )
    report.settings = {"prompts": str(path), **_settings(args, core, candidates, started)}
    emit(args, report.to_json(), report.table())
    return EXIT_OK if report.tallies else EXIT_FAILED


def _eval_edits(args: argparse.Namespace, judge: Any) -> int:
    from PIL import Image

    from shapes_lab.edit_set import DEFAULT_EDITS, Edit, load_edits
    from shapes_lab.evaluate_edits import evaluate_edits, model_geometry
    from shapes_lab.render import render

    path = args.edit_set or DEFAULT_EDITS
    try:
        edits = _limit(load_edits(path), args.limit)
    except (OSError, ValueError) as error:
        raise CliError(f"cannot read the edit set: {error}", EXIT_USAGE) from None
    try:
        snap, encode = model_geometry()
    except ImportError as error:
        raise CliError(f"the Shapes backend takes no image prompts here: {error}") from None
    with _scratch_core(args) as (core, candidates):
        inputs: dict[str, tuple[Any, Any]] = {}

        def generate(edit: Edit, seed: int, ranked: bool) -> list[Image.Image]:
            if edit.id not in inputs:  # stored once, given to both runs
                mask = edit.mask_image()
                inputs[edit.id] = (
                    core.add_input(render(edit.source)),
                    None if mask is None else core.add_input(mask, mask=True),
                )
            picture, mask_picture = inputs[edit.id]
            return _generate(
                core,
                args,
                edit.prompt,
                seed=seed,
                candidates=candidates if ranked else args.count,
                image=picture,
                mask=mask_picture,
                strength=edit.strength,
            )

        started = time.perf_counter()
        progress = _progress(args, len(edits), "edits")
        report = evaluate_edits(
            edits, generate, _checker(judge), snap, encode, seed=args.seed, progress=progress
        )
    report.settings = {
        "edit_set": str(path),
        **_settings(args, core, candidates, started),
        "preservation": "pixel-identical outside shapes_backend.model.edit.snapped_mask",
        "patches_kept": "the 64 patch tokens of the shipped image tokenizer (not the background)",
    }
    emit(args, report.to_json(), report.table())
    return EXIT_OK if report.tallies else EXIT_FAILED


@contextmanager
def _scratch_core(args: argparse.Namespace) -> Iterator[tuple[Any, int]]:
    """The core, on a scratch data folder unless --data-dir says otherwise (evaluation
    images and inputs stay out of the user's history), and the candidates to rank."""
    with tempfile.TemporaryDirectory(prefix="studio-eval-") as scratch:
        if args.data_dir is None:
            args.data_dir = scratch
        with open_core(args) as core:
            yield core, args.candidates or max(args.count, core.settings.candidates)
    if not args.json:
        print(file=sys.stderr)  # ends the progress line


def _checker(judge: Any) -> Callable[[Any, Any], bool]:
    return lambda image, spec: judge.check(image, spec).passed


def _progress(args: argparse.Namespace, total: int, noun: str) -> Callable[[int], None]:
    def progress(done: int) -> None:
        if not args.json:
            print(f"\r{done}/{total} {noun}", end="", file=sys.stderr, flush=True)

    return progress


def _settings(
    args: argparse.Namespace, core: Any, candidates: int, started: float
) -> dict[str, Any]:
    """What an evaluation ran with, for its report."""
    return {
        "backend": args.backend or core.default_backend(),
        "model": args.model or "",
        "count": args.count,
        "candidates": candidates,
        "seed": args.seed,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _generate(
    core: Any, args: argparse.Namespace, prompt: str, *, seed: int, candidates: int, **inputs: Any
) -> list[Any]:
    """The shown images of one request through the engine (`inputs`: image prompts)."""
    from PIL import Image

    try:
        request = core.request(
            prompt,
            backend=args.backend,
            model=args.model,
            seed=seed,
            count=args.count,
            candidates=candidates,
            **inputs,
        )
    except RequestError as error:
        raise CliError(f"invalid request: {error}", EXIT_USAGE) from None
    job = core.engine.submit(request)
    job.wait()
    if job.state is not JobState.DONE:
        raise CliError(f"generation failed for {prompt!r}: {job.error or job.state}")
    return [Image.open(entry.path).convert("RGB") for entry in job.results]


def _limit(prompts: list[Any], limit: int | None) -> list[Any]:
    if limit is None:
        return prompts
    counts: dict[tuple[str, str], int] = {}
    kept = []
    for p in prompts:
        key = (p.split, p.kind)
        counts[key] = counts.get(key, 0) + 1
        if counts[key] <= limit:
            kept.append(p)
    return kept
