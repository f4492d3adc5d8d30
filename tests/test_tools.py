"""Developer tools that move model files around."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

ROOT = Path(__file__).resolve().parents[1]


def test_safetensors_parts_split_in_halves_and_join_back(tmp_path) -> None:
    rng = np.random.default_rng(0)
    tensors = {
        f"layer.{i}.weight": rng.standard_normal((i + 1, 64), dtype=np.float32) for i in range(12)
    }
    original = tmp_path / "model.safetensors"
    save_file(tensors, str(original), metadata={"config": '{"width": 64}'})
    tool = [sys.executable, str(ROOT / "tools" / "safetensors_parts.py")]
    subprocess.run([*tool, "split", str(original), str(tmp_path)], check=True)
    sizes = [(tmp_path / f"part-{i}.safetensors").stat().st_size for i in range(2)]
    assert max(sizes) < 0.6 * original.stat().st_size  # halves, by bytes
    joined = tmp_path / "joined.safetensors"
    subprocess.run([*tool, "join", str(tmp_path), str(joined)], check=True)
    again = load_file(str(joined))
    assert again.keys() == tensors.keys()
    assert all(np.array_equal(again[k], tensors[k]) for k in tensors)
    with safe_open(str(joined), framework="np") as handle:
        assert handle.metadata() == {"config": '{"width": 64}'}
