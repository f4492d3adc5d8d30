"""Stable-Diffusion-family models from the user's disk, run by diffusers (PyTorch).

CUDA with fp16 when present; on the CPU fp32, or bfloat16 for a model stored in fp16 or
bf16 where the CPU computes in it (`weights`: compact, and no copy while loading). The
starting noise of each
image is drawn on the CPU from its own seed (the request's seed + its index, `noise`),
so a seed gives the same image on any machine and from the ONNX backend. Images are made
one at a time, so that each is exactly the image its seed makes alone (`--from` makes it
again). Previews come from the latents by a linear map at every step; a cancel stops at
the next step, before decoding.

With a picture (img2img) and a mask (inpainting), diffusers' inpainting pipeline runs
over the same modules with Studio's noise (`picture_pipelines`), at the model's native
area, and its output goes back into the picture (`pictures`): request options
`mask_blur` (pixels, default 4), `inpaint_area` ("whole" or "masked") and
`inpaint_padding` (pixels around the mask in "masked", default 32).

With ControlNets (`request.controls`), diffusers' ControlNet pipelines run over the same
modules (`control_pipelines`), each ControlNet loaded once beside the model
(`controlnets`); without them, the paths above exactly.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from sd_backends import library, pictures
from sd_backends.architecture import (
    CONTROLNET,
    INPAINTING,
    LORA,
    SDXL,
    architecture,
    variant,
)
from sd_backends.controlnets import LoadedControlNets
from sd_backends.decode_progress import reporting_decode
from sd_backends.load_errors import load_failure
from sd_backends.noise import initial_noise
from sd_backends.preview import SD_FACTORS, SDXL_FACTORS, latents_to_rgb
from sd_backends.schedulers import SAMPLERS, make_scheduler
from sd_backends.single_file import CONFIG_FOLDERS, load_single_file
from sd_backends.torch_loras import LoraWeights
from sd_backends.weights import WeightReader, check_finite, compute_dtype, weight_files
from studio.api import (
    Candidate,
    Control,
    GenerationContext,
    GenerationRequest,
    ModelFile,
    PickleRefused,
    RequestError,
    sniff,
)

log = logging.getLogger(__name__)
SUPPORTED_FORMATS = ("diffusers", "safetensors")


class DiffusionBackend(library.LibraryBackend):
    display_name = "Stable Diffusion (diffusers)"
    formats = SUPPORTED_FORMATS
    samplers = tuple(SAMPLERS)
    control_formats = SUPPORTED_FORMATS

    def loads(self, found: ModelFile) -> bool:
        """Single files only of the architectures whose configuration ships."""
        return found.format != "safetensors" or architecture(found) in CONFIG_FOLDERS

    def __init__(self) -> None:
        self._pipeline: Any = None
        self._pictures: Any = None  # the inpainting pipeline over the same modules
        self._model: ModelFile | None = None
        self._device = "cpu"
        self._scheduler_config: Any = None
        self._controlnets = LoadedControlNets()  # beside the loaded model only
        self._loras = LoraWeights()  # fused into the loaded model's weights

    # -- what it offers --------------------------------------------------------

    def device(self) -> str:
        return self._device

    # -- loading ---------------------------------------------------------------

    def load(self, model: str) -> None:
        quiet_offline_libraries()
        import torch

        found = library.find(self.model_library, model, self.formats)
        self.unload()  # the last model goes before the next one comes: never both at once
        kind = architecture(found)  # reads its header or configuration: a damaged one says so
        self._device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = compute_dtype(found, self._device)
        total = sum(f.stat().st_size for f in weight_files(found))
        reader = WeightReader(dtype, total, self.report_loading)
        with reader.installed():
            if found.format == "safetensors":
                pipeline = load_single_file(found.path, kind, dtype)
            else:
                pipeline = load_diffusers_folder(found.path, dtype)
        _check_finite(pipeline, found.name, reader.checked)
        if self._device == "cpu":
            _channels_last(pipeline.vae)
        self._pipeline = pipeline.to(self._device)
        self._scheduler_config = pipeline.scheduler.config  # the model's own, never drifted
        self._pipeline.set_progress_bar_config(disable=True)
        self._model, self._pictures = found, None

    def unload(self) -> None:
        self._pipeline, self._model, self._pictures = None, None, None
        self._controlnets.clear()
        self._loras = LoraWeights()  # its copies of the original weights go too
        if self._device == "cuda":
            import torch

            torch.cuda.empty_cache()

    # -- generating ------------------------------------------------------------

    def generate(self, request: GenerationRequest, ctx: GenerationContext) -> list[Candidate]:
        import torch

        if self._pipeline is None:
            raise RuntimeError("no model is loaded")
        self._check_variant(request)
        pipe = self._pipeline
        # from the model's own configuration: one sampler's settings (Karras sigmas, say)
        # must not carry over to the next
        pipe.scheduler = make_scheduler(self.sampler_name(request), self._scheduler_config)
        _memory_options(pipe, request.options, self._device)
        request = self._apply_loras(request)
        controls = self._controls(request)
        seeds = [(request.seed + i) % 2**32 for i in range(request.count)]
        images: list[Any] = []
        # One image per run: a batch's matrix products are not one image's (kernels are
        # chosen by shape: ~1e-6 apart, enough to round a pixel the other way), and image i
        # must be the image its seed makes alone, which `--from` makes again.
        for done, seed in enumerate(seeds):
            try:
                images += self._run(request, [seed], done, len(seeds), ctx, controls)
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                raise MemoryError("out of GPU memory for one image: try a smaller size") from None
        return [Candidate(image, seed=seed) for image, seed in zip(images, seeds, strict=True)]

    def _check_variant(self, request: GenerationRequest) -> None:
        """An inpainting model draws only into a picture (the variants no backend runs are
        refused before loading: `library.refusal`)."""
        kind = variant(self._model) if self._model is not None else ""
        name = self._model.name if self._model is not None else "this model"
        if kind == INPAINTING and request.image is None:
            raise RequestError(
                [f"{name} is an inpainting model: give it a picture (and a mask) to repaint"]
            )

    def _apply_loras(self, request: GenerationRequest) -> GenerationRequest:
        """Fuse the request's LoRAs (its prompt's `<lora:…>` tags and `loras`) into the
        weights, in place of the last request's (none: the base weights, exactly); the
        request with the prompt the text encoder sees, without the tags."""
        text, loras = request.split_loras()
        formats = self.lora_formats
        found = [
            (library.find_addon(self.model_library, lora.model, LORA, formats), lora.weight)
            for lora in loras
        ]
        self._loras.set(self._pipeline, found)
        return request if text == request.prompt else request.replace(prompt=text)

    def _controls(self, request: GenerationRequest) -> list[tuple[Control, Any]]:
        """Each control's ControlNet: found in the library, loaded beside this model (kept
        for the next request) and checked to fit it. One at weight 0 would add nothing, so
        it is not run: weight 0 gives exactly the image without it."""
        if not request.controls:
            return []
        files = [
            library.find_addon(self.model_library, c.model, CONTROLNET, self.control_formats)
            for c in request.controls
        ]
        nets = self._controlnets.get(files, self._pipeline.unet, self._device)
        return [(c, net) for c, net in zip(request.controls, nets, strict=True) if c.weight > 0]

    def _run(
        self,
        request: GenerationRequest,
        seeds: list[int],
        done: int,
        total: int,
        ctx: GenerationContext,
        controls: list[tuple[Control, Any]] | None = None,
    ) -> list[Any]:
        if request.image is not None:
            return self._run_picture(request, seeds, done, total, ctx, controls)
        import torch

        pipe = self._pipeline
        extra: dict[str, Any] = {}
        if controls:
            from sd_backends.control_pipelines import control_pipeline, text_arguments

            pipe = control_pipeline(pipe, [net for _, net in controls])
            extra = text_arguments([c for c, _ in controls], (request.width, request.height))
        steps = request.steps
        scale = pipe.vae_scale_factor  # image pixels per latent pixel (8 in real models)
        shape = (pipe.unet.config.in_channels, request.height // scale, request.width // scale)
        noise = torch.from_numpy(initial_noise(seeds, shape))  # as the ONNX backend's
        generators = [torch.Generator().manual_seed(s) for s in seeds]  # ancestral samplers'
        on_step = self._reporter(ctx, len(seeds), done, total, steps)
        ctx.check_cancelled()
        out = reporting_decode(pipe, ctx, *shape[1:])(
            request.prompt,
            negative_prompt=request.negative_prompt or None,
            height=request.height,
            width=request.width,
            num_inference_steps=steps,
            guidance_scale=request.guidance,
            num_images_per_prompt=len(seeds),
            latents=noise.to(self._device, pipe.unet.dtype),
            generator=generators,
            output_type="np",
            callback_on_step_end=on_step,
            callback_on_step_end_tensor_inputs=["latents"],
            **extra,
        )
        return list(out.images)

    def _reporter(
        self, ctx: GenerationContext, images: int, done: int, total: int, steps: int
    ) -> Any:
        """diffusers' step callback: progress over the whole request (`done` of `total`
        images before this batch of `images`, `steps` each) and a preview of the latents."""
        factors = SDXL_FACTORS if self._model and architecture(self._model) == SDXL else SD_FACTORS

        def on_step(_pipe: Any, step: int, _timestep: Any, tensors: dict) -> dict:
            ctx.progress(done * steps + images * (step + 1), total * steps)
            ctx.preview(latents_to_rgb(tensors["latents"].float().cpu().numpy(), factors))
            return {}

        return on_step

    def _run_picture(
        self,
        request: GenerationRequest,
        seeds: list[int],
        done: int,
        total: int,
        ctx: GenerationContext,
        controls: list[tuple[Control, Any]] | None = None,
    ) -> list[Any]:
        """img2img (a picture) or inpainting (and a mask) at the model's native area,
        each result put back into the picture at the request's size."""
        import torch
        from PIL import Image

        from sd_backends.picture_pipelines import picture_pipeline

        if controls:
            from sd_backends.control_pipelines import control_pipeline, picture_arguments

            pipe = control_pipeline(self._pipeline, [net for _, net in controls], picture=True)
        else:
            if self._pictures is None:
                self._pictures = picture_pipeline(self._pipeline)
            pipe = self._pictures
            pipe.scheduler = self._pipeline.scheduler  # this request's sampler
        blocks = len(pipe.unet.config.block_out_channels)
        job = pictures.PictureJob.plan(
            request,
            native=pipe.unet.config.sample_size * pipe.vae_scale_factor,
            multiple=pictures.size_multiple(pipe.vae_scale_factor, blocks),
        )
        steps = request.steps
        runs = steps - job.first_step(steps)
        canvas, image, model_mask = job.canvas, job.image, job.model_mask
        width, height = canvas.generation
        scale = pipe.vae_scale_factor
        channels = pipe.vae.config.latent_channels
        pipe.studio_noise = torch.from_numpy(
            initial_noise(seeds, (channels, height // scale, width // scale))
        )
        on_step = self._reporter(ctx, len(seeds), done, total, runs)
        extra = picture_arguments([c for c, _ in controls], job.canvas) if controls else {}
        ctx.check_cancelled()
        out = reporting_decode(pipe, ctx, height // scale, width // scale)(
            request.prompt,
            negative_prompt=request.negative_prompt or None,
            image=Image.fromarray((image * 255 + 0.5).astype(np.uint8)),
            mask_image=Image.fromarray((model_mask * 255).astype(np.uint8)),
            height=height,
            width=width,
            strength=job.strength,
            num_inference_steps=steps,
            guidance_scale=request.guidance,
            num_images_per_prompt=len(seeds),
            generator=[torch.Generator().manual_seed(s) for s in seeds],  # ancestral samplers'
            output_type="np",
            callback_on_step_end=on_step,
            callback_on_step_end_tensor_inputs=["latents"],
            **extra,
        )
        return job.put_back(out.images)


def load_diffusers_folder(folder: Path, dtype: Any) -> Any:
    """A diffusers folder's pipeline, from safetensors weights only (a part whose
    weights are pickles is refused before anything reads them), never reaching for the
    network."""
    from diffusers import DiffusionPipeline

    for part in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = [f for f in part.iterdir() if f.is_file() and f.suffix != ".json"]
        pickled = [f for f in files if sniff(f) == "pickle"]
        if pickled and not any(sniff(f) == "safetensors" for f in files):
            raise PickleRefused(
                f"cannot load pickled weights ({part.name}/{pickled[0].name}): a pickle can "
                f"run code when loaded. Convert it with `studio models convert {pickled[0]}`."
            )
    try:
        return DiffusionPipeline.from_pretrained(
            folder,
            dtype=dtype,
            local_files_only=True,
            use_safetensors=True,
            safety_checker=None,
            requires_safety_checker=False,
        )
    except MemoryError:
        raise
    except Exception as error:  # missing parts, wrong shapes, broken safetensors: say which
        raise load_failure(folder.name, "", error) from error


def _check_finite(pipeline: Any, name: str, checked: set[int]) -> None:
    """Every weight the reader did not check already (`checked`: their data pointers;
    a text encoder comes through transformers' own loader) holds finite values."""
    import torch

    for part, module in pipeline.components.items():
        if isinstance(module, torch.nn.Module):
            for weight, tensor in module.named_parameters():
                if tensor.data_ptr() not in checked:
                    check_finite(tensor, f"{name}: {part} weight {weight}")


def _channels_last(vae: Any) -> None:
    """The VAE's convolutions in channels-last, the layout oneDNN computes in: in any
    other, each converts to and from it (decoding 512 x 512 held 1.26 GB for that, 0.8 GB
    without, and ran faster; pixels move by 1e-4 at most). Its input is made so, which
    the convolutions follow; its weights stay as loaded (mapped from the file: a
    converted copy would sit beside their pages)."""
    import torch

    def to_channels_last(_module: Any, args: tuple) -> tuple:
        return (args[0].to(memory_format=torch.channels_last), *args[1:])

    for half in (vae.encoder, vae.decoder):
        half.register_forward_pre_hook(to_channels_last)


MEMORY_OPTIONS = ("attention_slicing", "vae_tiling", "cpu_offload")


def _memory_options(pipe: Any, options: dict[str, Any], device: str) -> None:
    """Request options for small GPUs, each on or off for this request: attention in
    slices (the same images, a little slower), the VAE decoding in tiles (blended at
    their seams: large images fit, the pixels change slightly), and on CUDA each model
    moved to the GPU only while it runs (accelerate's offload: slower, far less VRAM)."""
    if options.get("attention_slicing"):
        pipe.enable_attention_slicing()
    else:
        pipe.disable_attention_slicing()
    if options.get("vae_tiling"):
        pipe.vae.enable_tiling()
    else:
        pipe.vae.disable_tiling()
    if device == "cuda":
        if options.get("cpu_offload"):
            pipe.enable_model_cpu_offload()
        else:
            pipe.remove_all_hooks()
            pipe.to(device)


def quiet_offline_libraries() -> None:
    """Nothing is ever fetched; their notices and progress bars go to the log level."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for name in ("TRANSFORMERS", "DIFFUSERS"):
        os.environ.setdefault(f"{name}_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
