"""Export a Stable-Diffusion model to an ONNX folder that the ONNX backend runs.

    studio sd-export-onnx MODEL OUT

MODEL is a library name or a path (a diffusers folder or a single file). OUT gets
`text_encoder/`, `unet/`, `vae_decoder/` and `vae_encoder/` (each `model.onnx` with its
weights as external data beside it, inside the folder), `tokenizer/`, `scheduler/` and a
`model_index.json` naming the architecture, the UNet's input channels (9: an inpainting
model, whose UNet also takes the mask and the masked image's latents), its native size and
depth (where a picture request generates); SDXL adds
`text_encoder_2/` and `tokenizer_2/`.

The VAE encoder (for img2img and inpainting) maps `sample`, images (B, 3, H, W) in
[-1, 1], to `latent_mean`, the mean of the latent distribution: not a random sample, and
not multiplied by the scaling factor (the index's `vae_scaling_factor`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from sd_backends.architecture import INPAINTING, variant_by_channels

OPSET = 17
PIPELINES = (
    "StableDiffusionPipeline",
    "StableDiffusionXLPipeline",
    "StableDiffusionInpaintPipeline",
    "StableDiffusionXLInpaintPipeline",
)


def export(pipeline: Any, out: Path, architecture: str = "unknown") -> Path:
    """Write the ONNX folder for a diffusers pipeline of `PIPELINES` (text-to-image or
    inpainting, SD or SDXL) loaded in fp32 on the CPU."""
    kind = type(pipeline).__name__
    if kind not in PIPELINES:
        raise ValueError(f"only SD 1.x, 2.x and SDXL pipelines export to ONNX, not {kind}")
    xl = "XL" in kind
    if out.exists():
        raise FileExistsError(f"{out} exists: not overwritten")
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    text_length = pipeline.tokenizer.model_max_length
    ids = (torch.zeros(1, text_length, dtype=torch.int64),)
    channels = pipeline.unet.config.in_channels  # 9 for inpainting: latents, mask, image
    latent_channels = pipeline.vae.config.latent_channels
    text_axes = {"input_ids": {0: "batch"}, "hidden_states": {0: "batch"}}
    pooled_axes = text_axes | {"text_embeds": {0: "batch"}}
    with torch.no_grad():
        if xl:  # SDXL reads both encoders' next-to-last layer, and the second's projection
            _export(
                _TextEncoder(pipeline.text_encoder, penultimate=True),
                ids,
                staging / "text_encoder",
                ["input_ids"],
                ["hidden_states"],
                text_axes,
            )
            _export(
                _TextEncoder(pipeline.text_encoder_2, penultimate=True, pooled=True),
                ids,
                staging / "text_encoder_2",
                ["input_ids"],
                ["hidden_states", "text_embeds"],
                pooled_axes,
            )
        else:
            _export(
                _TextEncoder(pipeline.text_encoder),
                ids,
                staging / "text_encoder",
                ["input_ids"],
                ["hidden_states"],
                text_axes,
            )
        width = pipeline.unet.config.cross_attention_dim
        unet_inputs = [
            torch.randn(2, channels, 8, 8),
            torch.tensor([10.0, 10.0]),
            torch.randn(2, text_length, width),
        ]
        names = ["sample", "timestep", "encoder_hidden_states"]
        axes = {
            "sample": {0: "batch", 2: "height", 3: "width"},
            "timestep": {0: "batch"},
            "encoder_hidden_states": {0: "batch"},
            "noise_pred": {0: "batch", 2: "height", 3: "width"},
        }
        if xl:  # the pooled text and the six size numbers
            pooled = pipeline.text_encoder_2.config.projection_dim
            unet_inputs += [torch.randn(2, pooled), torch.randn(2, 6)]
            names += ["text_embeds", "time_ids"]
        # LCM-distilled UNets take the guidance scale as an input (`timestep_cond`)
        cond_dim = pipeline.unet.config.time_cond_proj_dim
        if cond_dim:
            unet_inputs.append(torch.randn(2, cond_dim))
            names.append("timestep_cond")
        axes |= {name: {0: "batch"} for name in names[3:]}
        _export(
            _UNet(pipeline.unet, names[3:]),
            tuple(unet_inputs),
            staging / "unet",
            names,
            ["noise_pred"],
            axes,
        )
        image_axes = {0: "batch", 2: "height", 3: "width"}
        _export(
            _VaeDecoder(pipeline.vae),
            (torch.randn(1, latent_channels, 8, 8),),
            staging / "vae_decoder",
            ["latent_sample"],
            ["sample"],
            {"latent_sample": image_axes, "sample": image_axes},
        )
        side = 8 * pipeline.vae_scale_factor
        _export(
            _VaeEncoder(pipeline.vae),
            (torch.rand(1, 3, side, side) * 2 - 1,),
            staging / "vae_encoder",
            ["sample"],
            ["latent_mean"],
            {"sample": image_axes, "latent_mean": image_axes},
        )
    if xl:
        pipeline.tokenizer_2.save_pretrained(staging / "tokenizer_2")
    pipeline.tokenizer.save_pretrained(staging / "tokenizer")
    pipeline.scheduler.save_pretrained(staging / "scheduler")
    variant = variant_by_channels(channels)
    inpainting = "Inpaint" if variant == INPAINTING else ""
    index = {
        "_class_name": f"OnnxStableDiffusion{inpainting}Pipeline",  # diffusers' names
        "architecture": architecture,
        "variant": variant,
        "unet_in_channels": channels,
        "vae_scaling_factor": pipeline.vae.config.scaling_factor,
        "vae_scale_factor": pipeline.vae_scale_factor,
        # where pictures are generated: the native size and the multiples the UNet takes
        "vae_latent_channels": latent_channels,
        "unet_sample_size": pipeline.unet.config.sample_size,
        "unet_blocks": len(pipeline.unet.config.block_out_channels),
        "unet_time_cond_proj_dim": cond_dim,
        "force_zeros_for_empty_prompt": bool(
            xl and pipeline.config.get("force_zeros_for_empty_prompt", True)
        ),
        "text_encoder_uses_attention_mask": bool(
            getattr(pipeline.text_encoder.config, "use_attention_mask", False)
        ),
    }
    (staging / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    staging.rename(out)  # a folder appears whole or not at all
    return out


class _TextEncoder(torch.nn.Module):
    """Its last layer's output, or (SDXL) the one before, and then the projected pooled
    output of an encoder with a projection."""

    def __init__(self, encoder: Any, penultimate: bool = False, pooled: bool = False) -> None:
        super().__init__()
        self.encoder, self.penultimate, self.pooled = encoder, penultimate, pooled

    def forward(self, input_ids: torch.Tensor) -> Any:
        if not self.penultimate:
            return self.encoder(input_ids, return_dict=False)[0]
        out = self.encoder(input_ids, output_hidden_states=True)
        hidden = out.hidden_states[-2]
        return (hidden, out.text_embeds) if self.pooled else hidden


class _UNet(torch.nn.Module):
    """The UNet with its extra inputs by name: SDXL's `text_embeds` and `time_ids`, an LCM
    model's `timestep_cond`."""

    def __init__(self, unet: Any, extra: list[str]) -> None:
        super().__init__()
        self.unet, self.extra = unet, extra

    def forward(self, sample, timestep, encoder_hidden_states, *extra) -> torch.Tensor:
        given = dict(zip(self.extra, extra, strict=True))
        added = {k: given[k] for k in ("text_embeds", "time_ids") if k in given} or None
        return self.unet(
            sample,
            timestep,
            encoder_hidden_states,
            timestep_cond=given.get("timestep_cond"),
            added_cond_kwargs=added,
            return_dict=False,
        )[0]


class _VaeDecoder(torch.nn.Module):
    def __init__(self, vae: Any) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, latent_sample: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latent_sample, return_dict=False)[0]


class _VaeEncoder(torch.nn.Module):
    """The latent distribution's mean: deterministic, as img2img wants its start."""

    def __init__(self, vae: Any) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, sample: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(sample, return_dict=False)[0].mean


def _export(
    module: Any,
    inputs: tuple,
    folder: Path,
    input_names: list[str],
    output_names: list[str],
    axes: dict,
) -> None:
    """One graph as folder/model.onnx, its weights in folder/model.onnx.data."""
    import onnx

    folder.mkdir(parents=True, exist_ok=True)
    graph = folder / "model.onnx"
    torch.onnx.export(
        module.eval(),
        inputs,
        str(graph),
        input_names=input_names,
        output_names=output_names,
        dynamic_axes=axes,
        opset_version=OPSET,
        dynamo=False,
    )
    model = onnx.load(str(graph))  # re-saved with every weight in one external file
    for stray in folder.iterdir():
        stray.unlink()
    onnx.save_model(
        model,
        str(graph),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="model.onnx.data",
        size_threshold=0,
    )
