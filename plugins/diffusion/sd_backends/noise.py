"""The noise of each image: numpy's PCG64 from the image's own seed, on the CPU.

The same numbers on any machine and from either backend (the ONNX one imports no
torch), so a seed gives the same image alone or in a batch, on CUDA or the CPU."""

from __future__ import annotations

import numpy as np

STEP_STREAM = 1  # the spawn key of the stream an ancestral sampler draws from (start: none)


def initial_noise(seeds: list[int], shape: tuple[int, ...]) -> np.ndarray:
    """(len(seeds), *shape) float32 standard normal noise, one seed per image."""
    return np.stack(
        [np.random.default_rng(seed).standard_normal(shape, dtype=np.float32) for seed in seeds]
    )


class StepNoise:
    """What an ancestral sampler ("Euler a", LCM) adds at each step: row i of each draw
    from image i's own stream (its seed's, apart from its starting noise's), so that an
    image's seed alone draws it again, whatever was drawn beside it."""

    def __init__(self, seeds: list[int]) -> None:
        self._streams = [
            np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(STEP_STREAM,)))
            for seed in seeds
        ]

    def standard_normal(self, shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
        """(len(seeds), *shape[1:]) standard normal noise: `shape` is the latents'."""
        if shape[0] != len(self._streams):
            raise ValueError(f"{shape[0]} images' noise asked of {len(self._streams)} streams")
        return np.stack([s.standard_normal(shape[1:], dtype=dtype) for s in self._streams])
