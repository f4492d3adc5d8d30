"""Decoding reported as its own phase: the VAE turning latents into pixels takes as long
as many steps on a big image, and a bar must not sit at "step N of N" meanwhile.

Hooks on the VAE's decoder module count its runs: one for a whole image, or one per tile
when tiling is on (as diffusers' `AutoencoderKL.tiled_decode` splits the latents)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from studio.api import DECODING, GenerationContext


def decoder_runs(vae: Any, height: int, width: int) -> int:
    """How many times the decoder runs on latents of `height` x `width`: once, or once per
    tile, counted as diffusers 0.42's `tiled_decode` walks them (overlapping tiles of
    `tile_latent_min_size`, a stride of (1 - `tile_overlap_factor`) of it)."""
    tile = getattr(vae, "tile_latent_min_size", 0)
    if not getattr(vae, "use_tiling", False) or (height <= tile and width <= tile):
        return 1
    stride = int(tile * (1 - vae.tile_overlap_factor))
    return math.ceil(height / stride) * math.ceil(width / stride)


@contextmanager
def decoding_reported(vae: Any, ctx: GenerationContext, height: int, width: int) -> Iterator[None]:
    """While it lasts, each decode of latents `height` x `width` reports DECODING 0 of n
    as it starts and k of n after each decoder run (n: `decoder_runs`). A cancel raises
    from the report, so decoding stops there too."""
    runs = decoder_runs(vae, height, width)
    done = [0]

    def before(_module: Any, _inputs: Any) -> None:
        if done[0] == 0:
            ctx.progress(0, runs, DECODING)

    def after(_module: Any, _inputs: Any, _output: Any) -> None:
        done[0] += 1
        ctx.progress(done[0], runs, DECODING)

    handles = [
        vae.decoder.register_forward_pre_hook(before),
        vae.decoder.register_forward_hook(after),
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def reporting_decode(pipe: Any, ctx: GenerationContext, height: int, width: int) -> Any:
    """`pipe`, to call as it is, with its decoding of `height` x `width` latents reported."""

    def call(*args: Any, **kwargs: Any) -> Any:
        with decoding_reported(pipe.vae, ctx, height, width):
            return pipe(*args, **kwargs)

    return call
