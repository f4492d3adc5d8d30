"""The starting noise of each image: numpy's PCG64 from the image's own seed, on the CPU.

The same numbers on any machine and from either backend (the ONNX one imports no
torch), so a seed gives the same image alone or in a batch, on CUDA or the CPU."""

from __future__ import annotations

import numpy as np


def initial_noise(seeds: list[int], shape: tuple[int, ...]) -> np.ndarray:
    """(len(seeds), *shape) float32 standard normal noise, one seed per image."""
    return np.stack(
        [np.random.default_rng(seed).standard_normal(shape, dtype=np.float32) for seed in seeds]
    )
