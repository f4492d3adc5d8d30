"""ControlNets on the ONNX backend, without torch: exported ControlNet folders
(`export_onnx.export_controlnet`) run beside the UNet at each step, as diffusers'
ControlNet pipelines run them over the PyTorch backend's modules.

- The map: as the PyTorch backend gives it to diffusers (`control_pipelines`): scaled
  (Lanczos, RGB) to the generation size; for a picture, first to the result's size and
  cropped to the region redrawn; in [0, 1], one row per UNet row.
- The steps: of the n steps that run, step i is controlled when [i/n, (i+1)/n] lies in
  [start, end] (diffusers' `controlnet_keep`); outside, the ControlNet is skipped, which
  adds what diffusers adds there (its residuals times 0).
- The residuals of several ControlNets are summed, each scaled by its weight (an input of
  the graph). A ControlNet of pooled conditions (`global_pool_conditions`, diffusers'
  guess mode) runs on the conditional half of a guided batch alone, zeros for the other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sd_backends.pictures import Canvas, control_picture
from studio.api import Control, ModelFileError, read_json_object

PART = "controlnet"
AGAIN = "export it again (`studio sd-export-onnx MODEL OUT`)"


def controlnet_index(folder: Path) -> dict[str, Any]:
    """An exported ControlNet folder's index (ModelFileError for another folder)."""
    index = read_json_object(folder / "model_index.json")
    if index.get("kind") != "controlnet" or not (folder / PART / "model.onnx").is_file():
        raise ModelFileError(f"{folder.name} is not an ONNX ControlNet export")
    return index


def check_fits(name: str, index: Mapping[str, Any], unet: Mapping[str, Any], model: str) -> None:
    """Refuse a ControlNet (`index`) on a base model (`unet`: its export's index) it was
    not made for, or one exported before ControlNets."""
    residuals = unet.get("unet_control_residuals")
    if not unet.get("unet_control_inputs") or not residuals:
        raise ModelFileError(
            f"{model} was exported to ONNX before ControlNets (its UNet takes no "
            f"residuals): {AGAIN}"
        )
    width = unet.get("cross_attention_dim")
    latents = unet.get("vae_latent_channels", 4)  # an inpainting UNet's ControlNet reads these
    fits = index.get("residuals") == residuals and index.get("in_channels") == latents
    if not fits or width not in (None, index["cross_attention_dim"]):
        raise ModelFileError(
            f"ControlNet {name} ({index.get('architecture', 'unknown')}) does not fit "
            f"{model} ({unet.get('architecture', 'unknown')}): their layers differ"
        )


class OnnxControlNet:
    """An exported ControlNet folder, loaded: its index and session."""

    def __init__(self, folder: Path, session: Callable[[Path], Any]) -> None:
        self.folder, self.index = folder, controlnet_index(folder)
        self.session = session(folder / PART / "model.onnx")

    def residuals(
        self,
        sample: np.ndarray,
        timestep: float,
        context: np.ndarray,
        cond: np.ndarray,
        weight: float,
        extra: Mapping[str, np.ndarray],
    ) -> list[np.ndarray]:
        inputs = {
            "sample": sample[:, : self.index.get("in_channels", 4)],  # not an inpainting's 9
            "timestep": np.full(len(sample), timestep, np.float32),
            "encoder_hidden_states": context,
            "controlnet_cond": cond,
            "conditioning_scale": np.array(weight, np.float32),
        }
        inputs |= {name: extra[name] for name in self.index.get("extra_inputs", [])}
        return self.session.run(None, inputs)


def control_input(control: Control, size: tuple[int, int], canvas: Canvas | None) -> np.ndarray:
    """The map as the ControlNet takes it, (1, 3, H, W) float32 in [0, 1]: at `size`
    (width, height) for text alone; for a picture, treated as the picture is (scaled to
    the result's size, cropped to the region redrawn) and scaled to the generation size."""
    image = control_picture(control, size, canvas)
    return (np.asarray(image, np.float32) / 255.0).transpose(2, 0, 1)[None].copy()


def residual_name(index: int, count: int) -> str:
    """The UNet's input (and the ControlNet's output) of residual `index` of `count`."""
    return "mid_residual" if index == count - 1 else f"down_residual_{index}"


def kept(step: int, steps: int, start: float, end: float) -> bool:
    """Whether a ControlNet acts at step `step` of the `steps` that run."""
    return not (step / steps < start or (step + 1) / steps > end)


@dataclass(frozen=True)
class ControlRun:
    """One ControlNet of a request: its map (one row per UNet row) and schedule."""

    net: OnnxControlNet
    cond: np.ndarray
    weight: float
    start: float
    end: float


def step_residuals(
    runs: Sequence[ControlRun],
    step: int,
    steps: int,
    sample: np.ndarray,
    timestep: float,
    context: np.ndarray,
    extra: Mapping[str, np.ndarray],
    guided: bool,
) -> list[np.ndarray] | None:
    """The summed residuals of the ControlNets that act at this step (None: none acts).
    A guided batch is (unconditional rows, conditional rows)."""
    total: list[np.ndarray] | None = None
    for run in runs:
        if run.weight == 0 or not kept(step, steps, run.start, run.end):
            continue
        if guided and run.net.index.get("global_pool_conditions"):
            half = len(sample) // 2
            out = run.net.residuals(
                sample[half:],
                timestep,
                context[half:],
                run.cond[half:],
                run.weight,
                {k: v[half:] for k, v in extra.items()},
            )
            out = [np.concatenate([np.zeros_like(r), r]) for r in out]
        else:
            out = run.net.residuals(sample, timestep, context, run.cond, run.weight, extra)
        total = out if total is None else [a + b for a, b in zip(total, out, strict=True)]
    return total
