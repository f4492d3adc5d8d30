"""The transformer's training step on the CPU: fp32 against bf16 autocast, side by side.

    .venv/bin/python bench/bench_train_step.py [--threads 1,2] [--steps 30] [--bundle DIR]

Times forward, backward and AdamW on the shipped configuration's transformer and batch
size, over batches rendered beforehand (so only the model is timed), after a few warm-up
steps. On a CPU with AMX or AVX512-BF16, bf16 matmuls run on their own units; whether
that pays at width 192 is what this measures. The losses of the timed steps are printed
too: the two precisions start from the same weights and see the same batches.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from shapes_backend.model.bundle import SHIPPED, Tokenizers
from shapes_lab.model.config import TrainConfig, get_config
from shapes_lab.model.data import transformer_batches
from shapes_lab.model.train import new_transformer, training_loss, transformer_update

WARMUP = 5


def time_steps(
    config: TrainConfig, tokenizers: Tokenizers, batches: list, bf16: bool
) -> tuple[float, float]:
    """(steps a second, mean loss) of training steps over `batches`, from fresh weights."""
    model, optimizer = new_transformer(config, tokenizers)
    model.train()
    losses, started = [], 0.0
    for index, (text, backgrounds, patches) in enumerate(batches):
        if index == WARMUP:
            started = time.perf_counter()
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            text_loss, image_loss = model.losses(text, backgrounds, patches)
        loss = training_loss(config, text_loss, image_loss)
        transformer_update(model, optimizer, loss)
        if index >= WARMUP:
            losses.append(loss.item())
    return (len(batches) - WARMUP) / (time.perf_counter() - started), sum(losses) / len(losses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per run")
    parser.add_argument("--config", default="shipped")
    parser.add_argument("--bundle", type=Path, default=SHIPPED, help="tokenizers from here")
    args = parser.parse_args()
    config = get_config(args.config)
    tokenizers = Tokenizers.load(args.bundle)
    stream = transformer_batches(tokenizers, config.batch, seed=123)
    batches = [tuple(next(stream)) for _ in range(WARMUP + args.steps)]
    print(
        f"transformer {config.width} wide, {config.layers} layers, batch {config.batch}; "
        f"{WARMUP} warm-up steps, then {args.steps} timed"
    )
    print(
        f"{'threads':>7}{'fp32 steps/s':>14}{'bf16 steps/s':>14}{'speed-up':>10}"
        f"{'fp32 loss':>11}{'bf16 loss':>11}"
    )
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        fp32, fp32_loss = time_steps(config, tokenizers, batches, bf16=False)
        bf16, bf16_loss = time_steps(config, tokenizers, batches, bf16=True)
        print(
            f"{threads:>7}{fp32:>14.2f}{bf16:>14.2f}{bf16 / fp32:>9.2f}x"
            f"{fp32_loss:>11.4f}{bf16_loss:>11.4f}"
        )


if __name__ == "__main__":
    main()
