"""Train the built-in model from nothing: image tokenizer, transformer, ranker.

    .venv/bin/python -m shapes_lab.model.train --config shipped --run runs/shipped \\
        --out plugins/shapes/shapes_backend/weights --version 6

Scenes stream from the generator (nothing is read from disk). Each stage checkpoints to
the run folder every few minutes and a finished stage leaves its weights there, so the
same command resumes an interrupted run where it stopped. Losses and periodic
evaluation scores go to stdout and `RUN/log.txt`; the finished bundle is copied to --out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from shapes_backend.model.bundle import (
    RANKER,
    TRANSFORMER,
    Tokenizers,
    load_module,
    save_module,
    write_model_card,
)
from shapes_backend.model.ranker import PatchHeads, RankerConfig, ShapesRanker
from shapes_backend.model.text_tokens import PAD, TextTokenizer
from shapes_backend.model.transformer import ShapesTransformer, TransformerConfig
from shapes_lab.model.config import TrainConfig, get_config
from shapes_lab.model.data import CaptionedBatches, transformer_batches
from shapes_lab.model.fit_tokenizer import fit_tokenizer
from shapes_lab.model.quick_eval import quick_eval


class RunLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.started = time.monotonic()

    def __call__(self, message: str, **figures: object) -> None:
        elapsed = time.monotonic() - self.started
        line = f"[{elapsed / 60:7.1f} min] {message}"
        if figures:
            line += "  " + "  ".join(f"{k}={_fmt(v)}" for k, v in figures.items())
        print(line, flush=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")


def _fmt(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


STAGES = ("transformer", "ranker")  # after the tokenizers, which every stage needs


def train(
    config: TrainConfig,
    run: Path,
    out: Path | None,
    log: RunLog,
    stages: tuple[str, ...] = STAGES,
    threads: int = 1,
    device: str = "cpu",
    workers: int = 0,
    minutes: float | None = None,
) -> Path:
    """Run (or resume) the stages; returns the bundle folder.

    The transformer and the ranker depend only on the tokenizers: with two threads or
    more and both stages to do, the ranker trains in a second process on one thread
    while the transformer takes the rest."""
    bundle = run / "bundle"
    bundle.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    torch.set_num_threads(threads)
    tokenizers = stage_tokenizers(config, bundle, log)
    side = None
    if threads >= 2 and set(stages) == set(STAGES) and not (bundle / RANKER).exists():
        side = _start_ranker_process(config, run)
        stages = ("transformer",)
        torch.set_num_threads(threads - 1)
    try:
        if "transformer" in stages:
            stage_transformer(config, tokenizers, run, log, device, workers, minutes, threads)
        if "ranker" in stages:
            stage_ranker(config, tokenizers, run, log)
        if side is not None and side.wait() != 0:
            raise RuntimeError(f"the ranker's process failed (exit {side.returncode}): see the log")
    finally:
        if side is not None and side.poll() is None:
            side.terminate()
    if not all((bundle / name).exists() for name in (TRANSFORMER, RANKER)):
        return bundle  # another process is still training a stage
    scores = quick_eval(bundle, config.eval_prompts_per_kind * 4, config.seed, ranked=True)
    log("final quick evaluation (ranked)", **scores)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for item in bundle.iterdir():
            shutil.copy2(item, out / item.name)
        shutil.copy2(run / "log.txt", out / "training-log.txt")
        log(f"bundle copied to {out}")
    return bundle


def _start_ranker_process(config: TrainConfig, run: Path) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "shapes_lab.model.train",
        "--config",
        config.name,
        "--seed",
        str(config.seed),
        "--run",
        str(run.resolve()),
        "--threads",
        "1",
        "--stages",
        "ranker",
    ]
    return subprocess.Popen(command)  # the lab is installed: no working folder needed


def stage_tokenizers(config: TrainConfig, bundle: Path, log: RunLog) -> Tokenizers:
    try:
        return Tokenizers.load(bundle)
    except ValueError:
        pass
    started = time.monotonic()
    image = fit_tokenizer(*config.patch, config.n_codes, config.codebook_scenes, config.seed)
    tokenizers = Tokenizers(TextTokenizer.build(), image)
    tokenizers.save(bundle)
    log("image tokenizer fitted", codes=config.n_codes, seconds=round(time.monotonic() - started))
    return tokenizers


@dataclass
class Schedule:
    """Linear warm-up, then cosine decay to a tenth of the peak over `steps`, or over
    `seconds` of wall time if that ends first (a run with a fixed time budget). With a
    `restarts`, the steps before the first decay over that many steps instead, those
    before the next follow the tail of the cosine over the next, and so on until `steps`:
    warm restarts, as SGDR does, that let a finished run go on without changing the
    steps it already took."""

    steps: int
    warmup: int
    peak: float
    seconds: float | None = None
    restarts: tuple[int, ...] = ()
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)  # tests set it
    started: float = field(init=False)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def progress(self, step: int) -> float:
        total = next((r for r in self.restarts if step < r), self.steps)
        by_steps = (step - self.warmup) / max(1, total - self.warmup)
        if self.seconds is None:
            return by_steps
        return max(by_steps, (self.clock() - self.started) / self.seconds)

    def lr(self, step: int) -> float:
        if step < self.warmup:
            return self.peak * (step + 1) / self.warmup
        progress = min(1.0, self.progress(step))
        return self.peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))

    def done(self, step: int) -> bool:
        return step >= self.steps or self.progress(step) >= 1.0


class Checkpoint:
    """Model and optimizer state in the run folder, written atomically every few minutes."""

    def __init__(self, path: Path, every_seconds: float) -> None:
        self.path, self.every, self.last = path, every_seconds, time.monotonic()

    def load(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> int:
        if not self.path.exists():
            return 0
        device = next(model.parameters()).device  # our own file; still no pickle code:
        state = torch.load(self.path, weights_only=True, map_location=device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        return int(state["step"])

    def maybe_save(self, model, optimizer, step: int, force: bool = False) -> None:
        if not force and time.monotonic() - self.last < self.every:
            return
        tmp = self.path.with_suffix(".tmp")
        torch.save(
            {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step}, tmp
        )
        os.replace(tmp, self.path)
        self.last = time.monotonic()


def new_transformer(
    config: TrainConfig, tokenizers: Tokenizers, device: str = "cpu"
) -> tuple[ShapesTransformer, torch.optim.AdamW]:
    """The transformer's initial weights (seeded) and its optimizer, as every run starts."""
    model_config = TransformerConfig(
        text_vocab=tokenizers.text.size,
        n_codes=tokenizers.image.n_codes,
        n_patches=tokenizers.image.n_patches,
        width=config.width,
        layers=config.layers,
        heads=config.heads,
    )
    torch.manual_seed(config.seed)  # the initial weights, before any resume
    model = ShapesTransformer(model_config).to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, betas=(0.9, 0.95), weight_decay=0.01
    )
    return model, optimizer


def training_loss(
    config: TrainConfig, text_loss: torch.Tensor, image_loss: torch.Tensor
) -> torch.Tensor:
    """The text and image losses weighted as DALL·E did (config.text_weight : the rest)."""
    return config.text_weight * text_loss + (1 - config.text_weight) * image_loss


def transformer_update(
    model: ShapesTransformer, optimizer: torch.optim.Optimizer, loss: torch.Tensor
) -> None:
    """One optimizer step on `loss`, gradients clipped to norm 1."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()


def stage_transformer(
    config: TrainConfig,
    tokenizers: Tokenizers,
    run: Path,
    log: RunLog,
    device: str = "cpu",
    workers: int = 0,
    minutes: float | None = None,
    threads: int = 1,
    clock: Callable[[], float] = time.monotonic,
) -> ShapesTransformer:
    """Train (or resume) the transformer on `device`, with scenes rendered by `workers`
    processes; `minutes` bounds the time `clock` tells (the learning rate decays to fit
    it; tests give a clock of their own, which makes the steps taken exact). From
    step `config.all_threads_from` on it takes all `threads`: the ranker beside it is
    then expected done. A step, not the ranker's end, so the weights never depend on
    timing (the thread count changes float rounding)."""
    final = run / "bundle" / TRANSFORMER
    if final.exists():
        return load_module(ShapesTransformer, TransformerConfig, final)
    model, optimizer = new_transformer(config, tokenizers, device)
    checkpoint = Checkpoint(run / "transformer.ckpt", config.checkpoint_seconds)
    step = checkpoint.load(model, optimizer)
    params = sum(p.numel() for p in model.parameters())
    log(
        f"transformer: {params / 1e6:.2f} M parameters, from step {step} of {config.steps}, "
        f"on {device} with {workers} data workers"
    )
    fresh_every = 1 + config.replay  # one fresh batch, then `replay` recent ones
    batches = transformer_batches(
        tokenizers, config.batch, config.seed, start_step=step // fresh_every, workers=workers
    )
    recent: deque[tuple[torch.Tensor, ...]] = deque(maxlen=256)
    seconds = minutes * 60 if minutes else None
    schedule = Schedule(config.steps, config.warmup, config.lr, seconds, config.restarts, clock)
    bf16 = torch.autocast("cuda", torch.bfloat16, enabled=device.startswith("cuda"))
    window: list[tuple[float, float]] = []
    started = time.monotonic()
    while not schedule.done(step):
        model.train()
        if step % fresh_every == 0 or not recent:
            text, backgrounds, patches = (t.to(device, non_blocking=True) for t in next(batches))
            dropout = torch.Generator().manual_seed(config.seed * 1_000_003 + step)  # resumable
            dropped = torch.rand(len(text), generator=dropout) < config.text_dropout
            text = text.masked_fill(dropped.to(device)[:, None], PAD)
            recent.append((text, backgrounds, patches))
        else:  # data is the limit: learn from a recent batch again
            text, backgrounds, patches = recent[random.Random(step).randrange(len(recent))]
        with bf16:
            text_loss, image_loss = model.losses(text, backgrounds, patches)
        loss = training_loss(config, text_loss, image_loss)
        for group in optimizer.param_groups:
            group["lr"] = schedule.lr(step)
        transformer_update(model, optimizer, loss)
        step += 1
        window.append((text_loss.item(), image_loss.item()))
        late = 0 < config.all_threads_from <= step  # a resumed run too
        if late and torch.get_num_threads() < threads:
            torch.set_num_threads(threads)
            log(f"transformer step {step}: now on {threads} threads")
        if step % config.log_every == 0 or schedule.done(step):
            text_mean, image_mean = np.mean(window, axis=0)
            rate = len(window) * config.batch / (time.monotonic() - started)
            log(
                f"transformer step {step}",
                text_loss=float(text_mean),
                image_loss=float(image_mean),
                samples_per_s=round(rate, 1),
            )
            window, started = [], time.monotonic()
        if step % config.eval_every == 0 and not schedule.done(step):
            save_module(model, model.config, final.with_suffix(".eval"))
            scores = quick_eval(
                run / "bundle",
                config.eval_prompts_per_kind,
                config.seed,
                ranked=False,
                transformer=final.with_suffix(".eval"),
            )
            log(f"evaluation at step {step} (unranked)", **scores)
            started = time.monotonic()
        checkpoint.maybe_save(model, optimizer, step, force=schedule.done(step))
    save_module(model, model.config, final)
    final.with_suffix(".eval").unlink(missing_ok=True)
    return model.cpu().eval()


def stage_ranker(config: TrainConfig, tokenizers: Tokenizers, run: Path, log: RunLog) -> None:
    final = run / "bundle" / RANKER
    if final.exists():
        return
    model_config = RankerConfig(
        text_vocab=tokenizers.text.size,
        width=config.ranker_width,
        image_layers=config.ranker_image_layers,
        embed=config.ranker_width,
    )
    torch.manual_seed(config.seed + 1)
    model = ShapesRanker(model_config)
    heads = PatchHeads(config.ranker_width) if config.ranker_patch_heads else None
    trained = torch.nn.ModuleList([model] + ([heads] if heads else []))  # one checkpoint
    optimizer = torch.optim.AdamW(trained.parameters(), lr=config.ranker_lr, weight_decay=0.01)
    checkpoint = Checkpoint(run / "ranker.ckpt", config.checkpoint_seconds)
    step = checkpoint.load(trained, optimizer)
    log(
        f"ranker: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, "
        f"from step {step} of {config.ranker_steps}"
    )
    batches = CaptionedBatches(
        tokenizers,
        config.ranker_batch,
        config.seed + 1,
        start_step=step,
        negatives=config.ranker_negatives,
        twins=config.ranker_twins,
        labels=heads is not None,
    )
    schedule = Schedule(config.ranker_steps, config.warmup // 2, config.ranker_lr)
    losses, correct, started = [], [], time.monotonic()
    while step < config.ranker_steps:
        model.train()
        batch = batches.next()
        used = int(max((batch.text != PAD).sum(1).max(), (batch.negatives != PAD).sum(2).max()))
        batch.text, batch.negatives = batch.text[:, :used], batch.negatives[..., :used]  # speed
        near_misses = batch.near_misses if config.ranker_near_misses else None
        loss = model.loss(
            batch.text, batch.images, batch.negatives, near_misses, heads, batch.labels
        )
        for group in optimizer.param_groups:
            group["lr"] = schedule.lr(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        losses.append(loss.item())
        correct.append(model.hard_negative_accuracy(batch.text, batch.images, batch.negatives))
        if step % config.log_every == 0 or step == config.ranker_steps:
            rate = len(losses) * config.ranker_batch / (time.monotonic() - started)
            figures = {
                "loss": float(np.mean(losses)),
                "beats_hard_negatives": float(np.mean(correct)),
            }
            log(f"ranker step {step}", **figures, samples_per_s=round(rate, 1))
            losses, correct, started = [], [], time.monotonic()
        checkpoint.maybe_save(trained, optimizer, step, force=step == config.ranker_steps)
    save_module(model, model_config, final)


def parse_overrides(items: list[str]) -> dict[str, object]:
    """FIELD=VALUE strings -> typed overrides of TrainConfig's fields."""
    types = {field.name: type(field.default) for field in dataclasses.fields(TrainConfig)}
    overrides: dict[str, object] = {}
    for item in items:
        name, _, text = item.partition("=")
        if name == "restarts":  # steps: "8000,12000"
            overrides[name] = tuple(int(part) for part in text.split(",") if part.strip())
        elif name not in types or types[name] not in (int, float, bool, str):
            raise ValueError(f"cannot set {name!r}: not a plain configuration field")
        elif types[name] is bool:
            if text.lower() not in ("true", "false"):
                raise ValueError(f"{name} takes true or false, not {text!r}")
            overrides[name] = text.lower() == "true"
        else:
            overrides[name] = types[name](text)
    return overrides


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="shipped")
    parser.add_argument("--run", type=Path, help="checkpoint folder (default runs/CONFIG)")
    parser.add_argument("--out", type=Path, help="copy the finished bundle here")
    parser.add_argument(
        "--version", default="dev", help="the model card's version: the app shows 'Shapes vVERSION'"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="where the transformer trains: cpu, cuda")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="processes that render the transformer's scenes (0: this one)",
    )
    parser.add_argument(
        "--minutes", type=float, help="wall-time budget of the transformer (its schedule fits it)"
    )
    parser.add_argument(
        "--stages", default=",".join(STAGES), help="the stages to train, of: %(default)s"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a configuration field, e.g. ranker_steps=600",
    )
    args = parser.parse_args(argv)
    try:
        config = get_config(args.config, seed=args.seed, **parse_overrides(args.set))
    except (ValueError, TypeError) as error:
        parser.error(str(error))
    run = args.run or Path("runs") / config.name
    run.mkdir(parents=True, exist_ok=True)
    log = RunLog(run / "log.txt")
    log(
        f"training {config.name!r} with seed {config.seed}, {args.threads} threads: "
        + " ".join(sys.argv)
    )
    stages = tuple(args.stages.split(","))
    if not set(stages) <= set(STAGES):
        parser.error(f"--stages takes some of: {', '.join(STAGES)}")
    # The data stream's numpy matmuls would wake OpenBLAS's own threads, which spin on
    # the cores torch is using: one BLAS thread took training from 72 to 97 scenes a second.
    with threadpool_limits(limits=1, user_api="blas"):
        bundle = train(
            config,
            run,
            args.out,
            log,
            stages,
            args.threads,
            args.device,
            args.workers,
            args.minutes,
        )
    for folder in (bundle, args.out):
        if folder is not None and folder.is_dir():
            write_model_card(folder, args.version)
    return 0


if __name__ == "__main__":
    sys.exit(main())
