"""Stable-Diffusion ONNX folders run by ONNX Runtime, with no torch anywhere on this path.

Tokenizers from the `tokenizers` library, text encoder (SDXL: two), UNet and VAE decoder
as ONNX graphs, the sampling loop in numpy (`numpy_schedulers`). The CUDA execution provider is
used only when the session really got it. The starting noise is the PyTorch backend's
(`noise`), so the deterministic samplers (Euler, DPM++ 2M Karras, DDIM; LCM in one step)
give that backend's images; "Euler a" and LCM add numpy noise at each step, so their
images differ from PyTorch's (still one per seed). With a picture (img2img) and a mask
(inpainting), `numpy_pictures` computes what the PyTorch backend's inpainting pipeline
does, with the folder's VAE encoder (exported since pictures were added).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from sd_backends import library
from sd_backends.noise import initial_noise
from sd_backends.numpy_pictures import generation_geometry, sample
from sd_backends.numpy_schedulers import ONNX_SAMPLERS, Sampler, guidance_embedding
from sd_backends.pictures import PictureJob
from sd_backends.preview import SD_FACTORS, SDXL_FACTORS, latents_to_rgb
from studio.api import (
    Candidate,
    GenerationContext,
    GenerationRequest,
    ModelFile,
    ModelFileError,
)

log = logging.getLogger(__name__)
CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"
PARTS = ("text_encoder", "unet", "vae_decoder")
ENCODER = "vae_encoder"  # img2img and inpainting: folders exported before them lack it
FORMATS = ("onnx",)


class OnnxDiffusion:
    """An exported folder, loaded: sessions, tokenizers, scheduler configuration."""

    def __init__(self, folder: Path, threads: int = 0, prefer_cuda: bool = True) -> None:
        import onnxruntime as ort

        self.index = _json(folder / "model_index.json")
        self.scheduler = _json(folder / "scheduler" / "scheduler_config.json")
        parts = PARTS + (("text_encoder_2",) if (folder / "text_encoder_2").is_dir() else ())
        if (folder / ENCODER / "model.onnx").is_file():
            parts += (ENCODER,)
        for part in parts:
            if not (folder / part / "model.onnx").is_file():
                raise ModelFileError(f"{folder.name} lacks {part}/model.onnx")
        self.tokenizers = [_tokenizer(folder / "tokenizer")]
        if "text_encoder_2" in parts:  # SDXL
            self.tokenizers.append(_tokenizer(folder / "tokenizer_2"))
        available = ort.get_available_providers()
        wanted = [CUDA, CPU] if prefer_cuda and CUDA in available else [CPU]
        if CUDA in wanted:  # a CUDA build on a machine without its libraries: no noise
            ort.set_default_logger_severity(4)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        self.sessions = {
            part: ort.InferenceSession(str(folder / part / "model.onnx"), options, providers=wanted)
            for part in parts
        }
        self.provider = self.sessions["unet"].get_providers()[0]  # what it really got

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """(hidden states, pooled text): SDXL's two encoders' side by side and the second's
        pooled projection; one encoder's and None otherwise."""
        outputs = []
        for tokenizer, part in zip(
            self.tokenizers, ("text_encoder", "text_encoder_2"), strict=False
        ):
            ids = np.array([e.ids for e in tokenizer.encode_batch(texts)], np.int64)
            outputs.append(self.sessions[part].run(None, {"input_ids": ids}))
        if len(outputs) == 1:
            return outputs[0][0], None
        (first,), (second, pooled) = outputs
        return np.concatenate([first, second], axis=-1), pooled

    def unet(
        self, sample: np.ndarray, timestep: float, context: np.ndarray, extra: dict[str, np.ndarray]
    ) -> np.ndarray:
        t = np.full(len(sample), timestep, np.float32)
        inputs = {"sample": sample, "timestep": t, "encoder_hidden_states": context, **extra}
        return self.sessions["unet"].run(None, inputs)[0]

    def encode_image(self, pixels: np.ndarray) -> np.ndarray:
        """(B, 3, H, W) images in [-1, 1] -> their latents: the VAE's mean, scaled."""
        mean = self.sessions[ENCODER].run(None, {"sample": pixels.astype(np.float32)})[0]
        return (mean * self.index["vae_scaling_factor"]).astype(np.float32)

    def decode(self, latents: np.ndarray) -> np.ndarray:
        """Latents -> (B, H, W, 3) float images in [0, 1]."""
        scaled = (latents / self.index["vae_scaling_factor"]).astype(np.float32)
        images = self.sessions["vae_decoder"].run(None, {"latent_sample": scaled})[0]
        return np.clip(images / 2 + 0.5, 0, 1).transpose(0, 2, 3, 1)


class DiffusionOnnxBackend(library.LibraryBackend):
    display_name = "Stable Diffusion (ONNX Runtime)"
    formats = FORMATS
    samplers = ONNX_SAMPLERS
    control_formats = FORMATS

    def __init__(self, threads: int = 0) -> None:
        self.threads = threads
        self._model: ModelFile | None = None
        self._runtime: OnnxDiffusion | None = None

    def device(self) -> str:
        if self._runtime is None:
            return "cpu"
        return f"{'cuda' if self._runtime.provider == CUDA else 'cpu'} ({self._runtime.provider})"

    def load(self, model: str) -> None:
        found = library.find(self.model_library, model, self.formats)
        self._runtime = OnnxDiffusion(found.path, self.threads)
        self._model = found

    def unload(self) -> None:
        self._runtime, self._model = None, None

    def generate(self, request: GenerationRequest, ctx: GenerationContext) -> list[Candidate]:
        runtime = self._runtime
        if runtime is None:
            raise RuntimeError("no model is loaded")
        name = self.sampler_name(request)
        if name not in ONNX_SAMPLERS:
            raise ValueError(f"sampler {name!r} is not available with ONNX (use {ONNX_SAMPLERS})")
        job = None if request.image is None else self._picture_job(request, runtime)
        width, height = (request.width, request.height) if job is None else job.canvas.generation
        seeds = [(request.seed + i) % 2**32 for i in range(request.count)]
        scale = int(runtime.index.get("vae_scale_factor", 8))
        channels = int(runtime.index.get("vae_latent_channels", 4))
        noise = initial_noise(seeds, (channels, height // scale, width // scale))
        # LCM-distilled UNets take the guidance scale as an input, in one pass per image
        cond_dim = runtime.index.get("unet_time_cond_proj_dim")
        guided = request.guidance > 1.0 and not cond_dim
        context, pooled = runtime.encode([request.prompt])
        if guided:
            zeros = (
                runtime.index.get("force_zeros_for_empty_prompt") and not request.negative_prompt
            )
            negative = (
                (np.zeros_like(context), np.zeros_like(pooled))
                if zeros
                else runtime.encode([request.negative_prompt])
            )
            context = np.concatenate([negative[0], context])
            pooled = None if pooled is None else np.concatenate([negative[1], pooled])
        rows = len(context) * len(seeds)  # (uncond x n, cond x n)
        context = np.repeat(context, len(seeds), axis=0)
        extra = {}
        if pooled is not None:  # SDXL: the pooled text and (height, width, crop 0 0, height, width)
            extra["text_embeds"] = np.repeat(pooled, len(seeds), axis=0)
            size = [height, width, 0, 0, height, width]
            extra["time_ids"] = np.tile(np.array(size, np.float32), (rows, 1))
        if cond_dim:
            extra["timestep_cond"] = guidance_embedding(request.guidance, len(seeds), cond_dim)
        factors = SDXL_FACTORS if runtime.index.get("architecture") == "SDXL" else SD_FACTORS

        def denoise(x: np.ndarray, timestep: float) -> np.ndarray:
            ctx.check_cancelled()
            if not guided:
                return runtime.unet(x, timestep, context, extra)
            both = runtime.unet(np.concatenate([x, x]), timestep, context, extra)
            uncond, cond = np.split(both, 2)
            return uncond + request.guidance * (cond - uncond)

        sampler = Sampler(name, runtime.scheduler, request.steps)
        runs = request.steps if job is None else request.steps - job.first_step(request.steps)

        def on_step(i: int, latents: np.ndarray) -> None:
            ctx.progress(i + 1, runs)
            ctx.preview(latents_to_rgb(latents, factors))

        rng = np.random.default_rng(seeds)  # the ancestral sampler's noise
        if job is None:
            latents = sampler.run(noise, denoise, rng, on_step)
        else:
            in_channels = int(runtime.index.get("unet_in_channels", 4))
            latents = sample(
                job, sampler, noise, runtime.encode_image, denoise, rng, on_step, in_channels
            )
        ctx.check_cancelled()
        images = runtime.decode(latents)
        made = list(images) if job is None else job.put_back(images)
        return [Candidate(image, seed=seed) for image, seed in zip(made, seeds, strict=True)]

    def _picture_job(self, request: GenerationRequest, runtime: OnnxDiffusion) -> PictureJob:
        geometry = generation_geometry(runtime.index)
        if ENCODER not in runtime.sessions or geometry is None:
            name = self._model.name if self._model else "this model"
            raise ModelFileError(
                f"{name} was exported to ONNX without the VAE encoder that img2img and "
                "inpainting need: export it again (`studio sd-export-onnx MODEL OUT`)"
            )
        native, multiple = geometry
        job = PictureJob.plan(request, native, multiple)
        job.first_step(request.steps)  # a strength that runs no step is refused up front
        return job


def _tokenizer(folder: Path) -> Any:
    """CLIP's tokenizer from `tokenizers`, padded and truncated as its config says."""
    from tokenizers import Tokenizer

    settings = _json(folder / "tokenizer_config.json")
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    length = int(settings.get("model_max_length", 77))
    pad = str(settings.get("pad_token", "<|endoftext|>"))
    tokenizer.enable_truncation(length)
    tokenizer.enable_padding(length=length, pad_id=tokenizer.token_to_id(pad), pad_token=pad)
    return tokenizer


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelFileError(f"cannot read {path.parent.name}/{path.name}: {error}") from error
    return data if isinstance(data, dict) else {}
