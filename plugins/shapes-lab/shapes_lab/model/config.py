"""Training configurations: `micro` (the tests, under two minutes), `shipped` (2 CPU
cores, under 2.5 hours) and `gpu` (a larger transformer, for one GPU and many cores)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True)
class TrainConfig:
    name: str
    seed: int = 0
    # image tokenizer: patch size and mask codes, learned from this many scenes
    patch: tuple[int, int] = (8, 8)
    n_codes: int = 4096
    codebook_scenes: int = 12_000
    # transformer
    width: int = 192
    layers: int = 4
    heads: int = 6
    batch: int = 32
    steps: int = 12_000
    restarts: tuple[int, ...] = ()  # warm restarts of the learning rate at these steps
    all_threads_from: int = 0  # the step from which the transformer takes every thread (0: never)
    lr: float = 1e-3
    warmup: int = 500
    text_dropout: float = 0.1  # captions dropped, for classifier-free guidance
    text_weight: float = 1 / 8  # DALL-E's text : image loss weights
    replay: int = 0  # extra steps per fresh batch, on recent batches (when data is the limit)
    # ranker
    ranker_width: int = 128
    ranker_image_layers: int = 4
    ranker_steps: int = 4_000
    ranker_batch: int = 64
    ranker_negatives: int = 3  # hard-negative captions per image
    ranker_twins: int = 1  # scenes drawn for a changed caption, per scene
    ranker_near_misses: bool = True  # tokenized images, broken a little, as negatives
    ranker_patch_heads: bool = True  # dense labels: what covers each patch
    ranker_lr: float = 1e-3
    # bookkeeping
    log_every: int = 50
    eval_every: int = 2_000
    eval_prompts_per_kind: int = 3
    checkpoint_seconds: float = 300.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


CONFIGS = {
    # The ranker, beside the transformer on one thread, ends near step 6,700 on 2 cores.
    "shipped": TrainConfig(
        "shipped", steps=16_000, restarts=(8_000, 12_000), all_threads_from=7_000
    ),
    # Data-bound on a GPU: scenes render on the CPU cores (--workers), so each fresh batch
    # is also replayed once later. Width and depth stay within the CPU speed targets.
    "gpu": TrainConfig(
        "gpu",
        width=256,
        layers=6,
        heads=8,
        batch=512,
        steps=14_000,
        lr=2e-3,
        warmup=300,
        replay=1,
        log_every=100,
        eval_every=10**9,
        checkpoint_seconds=60.0,
    ),
    "micro": TrainConfig(
        "micro",
        n_codes=64,
        codebook_scenes=300,
        width=64,
        layers=1,
        heads=2,
        batch=16,
        steps=120,
        warmup=20,
        ranker_width=32,
        ranker_image_layers=1,
        ranker_steps=40,
        ranker_batch=16,
        log_every=20,
        eval_every=120,
        eval_prompts_per_kind=1,
        checkpoint_seconds=10.0,
    ),
}


def get_config(name: str, **overrides: Any) -> TrainConfig:
    if name not in CONFIGS:
        raise ValueError(f"unknown configuration {name!r} (known: {', '.join(CONFIGS)})")
    return replace(CONFIGS[name], **overrides)
