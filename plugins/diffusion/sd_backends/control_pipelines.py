"""Diffusers' ControlNet pipelines over the loaded pipeline's own modules (no copies),
drawing as Studio draws (imported with torch, when a request names ControlNets).

Text alone runs `StableDiffusion(XL)ControlNetPipeline` from Studio's noise (`latents=`,
as the plain pipeline does); a picture runs `StableDiffusion(XL)ControlNetInpaintPipeline`
with the same start as `picture_pipelines` (Studio's noise, the VAE's mean; a mask of
ones for img2img), 9-channel inpainting UNets included. Each ControlNet has its own
weight (`controlnet_conditioning_scale`) and window of the steps
(`control_guidance_start`/`end`); several are summed (diffusers' MultiControlNetModel).

The control map is scaled to the generation size; for a picture, it is first treated
as the picture is (scaled to the result's size and cropped to the region redrawn, when
only-masked inpainting crops), so map and picture cover the same place.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from diffusers import (
    StableDiffusionControlNetInpaintPipeline,
    StableDiffusionControlNetPipeline,
    StableDiffusionXLControlNetInpaintPipeline,
    StableDiffusionXLControlNetPipeline,
)
from PIL import Image

from sd_backends.picture_pipelines import _SeededLatents
from sd_backends.pictures import Canvas, control_picture
from studio.api import Control


class SeededControlInpaint(_SeededLatents, StableDiffusionControlNetInpaintPipeline):
    pass


class SeededControlInpaintXL(_SeededLatents, StableDiffusionXLControlNetInpaintPipeline):
    pass


_PIPELINES = {  # (SDXL, a picture) -> the class
    (False, False): StableDiffusionControlNetPipeline,
    (True, False): StableDiffusionXLControlNetPipeline,
    (False, True): SeededControlInpaint,
    (True, True): SeededControlInpaintXL,
}


def control_pipeline(pipeline: Any, nets: Sequence[Any], picture: bool = False) -> Any:
    """A ControlNet pipeline (for a picture: the inpainting one) over `pipeline`'s modules
    and its settings (SDXL's zeros for an empty negative prompt, say), with `nets`."""
    xl = "text_encoder_2" in pipeline.components
    made_class = _PIPELINES[xl, picture]
    accepted = inspect.signature(made_class.__init__).parameters
    parts = {k: v for k, v in pipeline.components.items() if k in accepted}
    settings = {
        k: v
        for k, v in pipeline.config.items()
        if k in accepted and k not in parts and not k.startswith("_")
    }
    if "add_watermarker" in accepted:  # as the loaded pipeline does, never by default
        settings["add_watermarker"] = getattr(pipeline, "watermark", None) is not None
    controlnet = nets[0] if len(nets) == 1 else list(nets)
    made = made_class(**parts, **settings, controlnet=controlnet)
    made.set_progress_bar_config(disable=True)
    return made


def text_arguments(controls: Sequence[Control], size: tuple[int, int]) -> dict[str, Any]:
    """The ControlNet arguments of a text-to-image call at `size` (width, height)."""
    return _arguments(controls, [control_picture(c, size) for c in controls], "image")


def picture_arguments(controls: Sequence[Control], canvas: Canvas) -> dict[str, Any]:
    """The ControlNet arguments of a picture call: each map over the canvas's region, at
    its generation size."""
    maps = [control_picture(c, canvas.generation, canvas) for c in controls]
    return _arguments(controls, maps, "control_image")


def _arguments(controls: Sequence[Control], maps: list[Image.Image], key: str) -> dict[str, Any]:
    """One ControlNet takes single values, several take lists (diffusers' convention)."""

    def each(values: list[Any]) -> Any:
        return values[0] if len(values) == 1 else values

    return {
        key: each(maps),
        "controlnet_conditioning_scale": each([c.weight for c in controls]),
        "control_guidance_start": each([c.start for c in controls]),
        "control_guidance_end": each([c.end for c in controls]),
    }
