"""Export a Stable-Diffusion model to an ONNX folder that the ONNX backend runs.

    studio sd-export-onnx MODEL OUT

MODEL is a library name or a path (a diffusers folder or a single file). OUT gets
`text_encoder/`, `unet/`, `vae_decoder/` and `vae_encoder/` (each `model.onnx` with its
weights as external data beside it, inside the folder), `tokenizer/`, `scheduler/` and a
`model_index.json` naming the architecture, the UNet's input channels (9: an inpainting
model, whose UNet also takes the mask and the masked image's latents), its native size and
depth (where a picture request generates); SDXL adds
`text_encoder_2/` and `tokenizer_2/`.

The UNet also takes a ControlNet's residuals, `down_residual_0..N-1` and `mid_residual`
(added to its skip connections and mid block, as diffusers' `down_block_additional_residuals`
and `mid_block_additional_residual`): zeros without a ControlNet, which change nothing.
The index lists them (`unet_control_residuals`: [channels, latent downscale] of each, the
mid block's last; `unet_control_inputs`: how many). `lora_map.json` says where each Linear
and Conv2d weight of the UNet and text encoders lies among the initializers
(`onnx_weight_map`), so the backend can fuse LoRAs; exports without it refuse them.

`export_controlnet` writes a ControlNet alone: `controlnet/model.onnx` taking `sample`,
`timestep`, `encoder_hidden_states`, `controlnet_cond` (the map, (B, 3, H, W) in [0, 1]),
`conditioning_scale` (a scalar) and SDXL's `text_embeds` and `time_ids`, giving the
residuals under the UNet's input names; its index has `"kind": "controlnet"`.

The VAE encoder (for img2img and inpainting) maps `sample`, images (B, 3, H, W) in
[-1, 1], to `latent_mean`, the mean of the latent distribution: not a random sample, and
not multiplied by the scaling factor (the index's `vae_scaling_factor`).
"""

from __future__ import annotations

import json
import shutil
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from sd_backends.architecture import INPAINTING, variant_by_channels
from sd_backends.onnx_controls import residual_name
from sd_backends.onnx_weight_map import lora_weights, weight_map
from studio.api import readable_size

OPSET = 17
Say = Callable[[str], None]  # a line of progress for the user
LORA_MAP = "lora_map.json"
PIPELINES = (
    "StableDiffusionPipeline",
    "StableDiffusionXLPipeline",
    "StableDiffusionInpaintPipeline",
    "StableDiffusionXLInpaintPipeline",
)


def export(pipeline: Any, out: Path, architecture: str = "unknown", say: Say | None = None) -> Path:
    """Write the ONNX folder for a diffusers pipeline of `PIPELINES` (text-to-image or
    inpainting, SD or SDXL) loaded in fp32 on the CPU; `say` hears of each part."""
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
    encoders = {"text_encoder": pipeline.text_encoder}
    if xl:
        encoders["text_encoder_2"] = pipeline.text_encoder_2
    parts = _Parts(say, len(encoders) + 3)  # the encoders, the UNet, the VAE's two halves
    with torch.no_grad():
        if xl:  # SDXL reads both encoders' next-to-last layer, and the second's projection
            parts.export(
                "the text encoder",
                _TextEncoder(pipeline.text_encoder, penultimate=True),
                ids,
                staging / "text_encoder",
                ["input_ids"],
                ["hidden_states"],
                text_axes,
            )
            parts.export(
                "the second text encoder",
                _TextEncoder(pipeline.text_encoder_2, penultimate=True, pooled=True),
                ids,
                staging / "text_encoder_2",
                ["input_ids"],
                ["hidden_states", "text_embeds"],
                pooled_axes,
            )
        else:
            parts.export(
                "the text encoder",
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
        extra = names[3:]
        residuals = control_residuals(pipeline.unet.config)
        for i, (depth, factor) in enumerate(residuals):  # zeros: a ControlNet adds nothing
            unet_inputs.append(torch.zeros(2, depth, 8 // factor, 8 // factor))
            names.append(residual_name(i, len(residuals)))
            axes[names[-1]] = {0: "batch", 2: f"height_{factor}", 3: f"width_{factor}"}
        parts.export(
            "the UNet",
            _UNet(pipeline.unet, extra),
            tuple(unet_inputs),
            staging / "unet",
            names,
            ["noise_pred"],
            axes,
        )
        image_axes = {0: "batch", 2: "height", 3: "width"}
        parts.export(
            "the VAE decoder",
            _VaeDecoder(pipeline.vae),
            (torch.randn(1, latent_channels, 8, 8),),
            staging / "vae_decoder",
            ["latent_sample"],
            ["sample"],
            {"latent_sample": image_axes, "sample": image_axes},
        )
        side = 8 * pipeline.vae_scale_factor
        parts.export(
            "the VAE encoder",
            _VaeEncoder(pipeline.vae),
            (torch.rand(1, 3, side, side) * 2 - 1,),
            staging / "vae_encoder",
            ["sample"],
            ["latent_mean"],
            {"sample": image_axes, "latent_mean": image_axes},
        )
    lora_map: dict[str, Any] = {"version": 1, "weights": {}, "unused": {}, "refused": {}}
    for part, module in {"unet": pipeline.unet, **encoders}.items():
        for key, found in weight_map(part, staging / part, lora_weights(module, part)).items():
            lora_map[key] |= found
    (staging / LORA_MAP).write_text(json.dumps(lora_map) + "\n")
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
        "cross_attention_dim": width,
        "unet_control_inputs": len(residuals),  # ControlNet residuals (older exports: none)
        "unet_control_residuals": [list(r) for r in residuals],
        "lora_map": LORA_MAP,
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


def export_controlnet(
    controlnet: Any, out: Path, architecture: str = "unknown", say: Say | None = None
) -> Path:
    """Write the ONNX folder of a diffusers `ControlNetModel` loaded in fp32 on the CPU:
    `controlnet/model.onnx` and an index saying what it fits (the UNet's residuals, the
    cross-attention width, SDXL's added inputs) and what it takes; `say` hears of it."""
    kind = type(controlnet).__name__
    if kind != "ControlNetModel":
        raise ValueError(f"only ControlNetModel exports to ONNX, not {kind}")
    if out.exists():
        raise FileExistsError(f"{out} exists: not overwritten")
    config = controlnet.config
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    # the map is downscaled to the latents by the conditioning embedding's strided convs
    factor = 2 ** (len(config.conditioning_embedding_out_channels) - 1)
    width = config.cross_attention_dim
    residuals = control_residuals(config)
    inputs = [
        torch.randn(2, config.in_channels, 8, 8),
        torch.tensor([10.0, 10.0]),
        torch.randn(2, 77, width),
        torch.rand(2, config.conditioning_channels, 8 * factor, 8 * factor),
        torch.tensor(1.0),
    ]
    names = ["sample", "timestep", "encoder_hidden_states", "controlnet_cond"]
    names.append("conditioning_scale")
    image_axes = {0: "batch", 2: "image_height", 3: "image_width"}
    axes: dict[str, dict[int, str]] = {
        "sample": {0: "batch", 2: "height", 3: "width"},
        "timestep": {0: "batch"},
        "encoder_hidden_states": {0: "batch", 1: "sequence"},
        "controlnet_cond": image_axes,
    }
    pooled = 0
    if config.addition_embed_type == "text_time":  # SDXL: the pooled text, six size numbers
        pooled = config.projection_class_embeddings_input_dim - 6 * config.addition_time_embed_dim
        inputs += [torch.randn(2, pooled), torch.randn(2, 6)]
        names += ["text_embeds", "time_ids"]
        axes |= {"text_embeds": {0: "batch"}, "time_ids": {0: "batch"}}
    elif config.addition_embed_type is not None or config.class_embed_type is not None:
        raise ValueError("this ControlNet takes inputs the ONNX export does not know")
    outputs = [residual_name(i, len(residuals)) for i in range(len(residuals))]
    for name, (_, scale) in zip(outputs, residuals, strict=True):
        axes[name] = {0: "batch", 2: f"height_{scale}", 3: f"width_{scale}"}
    parts = _Parts(say, 1)
    with torch.no_grad():
        parts.export(
            "the ControlNet",
            _ControlNet(controlnet, names[5:]),
            tuple(inputs),
            staging / "controlnet",
            names,
            outputs,
            axes,
        )
    index = {
        "_class_name": "OnnxControlNetModel",
        "kind": "controlnet",
        "architecture": architecture,
        "in_channels": config.in_channels,
        "conditioning_channels": config.conditioning_channels,
        "conditioning_scale_factor": factor,  # map pixels per latent pixel
        "cross_attention_dim": width,
        "extra_inputs": names[5:],
        "text_embeds_dim": pooled,
        "residuals": [list(r) for r in residuals],  # as the UNet's unet_control_residuals
        # diffusers runs such a ControlNet on the conditional half of a guided batch alone
        "global_pool_conditions": bool(config.global_pool_conditions),
    }
    (staging / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    staging.rename(out)
    return out


class _ControlNet(torch.nn.Module):
    """A ControlNet's residuals as separate outputs, its scale an input."""

    def __init__(self, controlnet: Any, extra: list[str]) -> None:
        super().__init__()
        self.controlnet, self.extra = controlnet, extra

    def forward(self, sample, timestep, hidden, cond, scale, *extra) -> tuple:
        added = dict(zip(self.extra, extra, strict=True)) or None
        down, mid = self.controlnet(
            sample,
            timestep,
            hidden,
            controlnet_cond=cond,
            conditioning_scale=scale,
            added_cond_kwargs=added,
            return_dict=False,
        )
        return (*down, mid)


def control_residuals(config: Any) -> list[tuple[int, int]]:
    """(channels, downscale from the latents) of each residual a ControlNet gives a UNet
    of this configuration (or a ControlNet's own): the down blocks' skip connections
    (conv_in's, each layer's, each downsampler's), then the mid block's."""
    widths = list(config.block_out_channels)
    layers = config.layers_per_block
    layers = [layers] * len(widths) if isinstance(layers, int) else list(layers)
    factor = 1
    found = [(widths[0], factor)]
    for i, width in enumerate(widths):
        found += [(width, factor)] * layers[i]
        if i < len(widths) - 1:  # every down block but the last halves the latents
            factor *= 2
            found.append((width, factor))
    return [*found, (widths[-1], factor)]


class _UNet(torch.nn.Module):
    """The UNet with its extra inputs by name (SDXL's `text_embeds` and `time_ids`, an
    LCM model's `timestep_cond`), then the ControlNet residuals, the mid block's last."""

    def __init__(self, unet: Any, extra: list[str]) -> None:
        super().__init__()
        self.unet, self.extra = unet, extra

    def forward(self, sample, timestep, encoder_hidden_states, *rest) -> torch.Tensor:
        given = dict(zip(self.extra, rest[: len(self.extra)], strict=True))
        residuals = rest[len(self.extra) :]  # none: a graph without ControlNet inputs
        down, mid = (residuals[:-1], residuals[-1]) if residuals else (None, None)
        added = {k: given[k] for k in ("text_embeds", "time_ids") if k in given} or None
        return self.unet(
            sample,
            timestep,
            encoder_hidden_states,
            timestep_cond=given.get("timestep_cond"),
            added_cond_kwargs=added,
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
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
    # The tracer warns of every Python branch on a tensor (dozens of lines about code that
    # is right for these models) and the exporter of folds it skips: noise to a user.
    # Errors still raise.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            inputs,
            str(graph),
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
            verbose=False,
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


class _Parts:
    """Exports the parts one by one, saying which (of how many), then its size and time."""

    def __init__(self, say: Say | None, count: int) -> None:
        self.say = say or (lambda _line: None)
        self.count = count
        self.done = 0

    def export(self, label: str, module: Any, inputs: tuple, folder: Path, *names: Any) -> None:
        self.done += 1
        which = f"{label} ({self.done} of {self.count})"
        self.say(f"exporting {which}…")
        start = time.monotonic()
        _export(module, inputs, folder, *names)
        size = sum(f.stat().st_size for f in folder.iterdir())
        self.say(f"exported {which}: {readable_size(size)} in {time.monotonic() - start:.1f} s")
