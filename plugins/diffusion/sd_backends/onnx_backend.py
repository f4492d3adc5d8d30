"""Stable-Diffusion ONNX folders run by ONNX Runtime, with no torch anywhere on this path.

Tokenizers from the `tokenizers` library, text encoder (SDXL: two), UNet and VAE decoder
as ONNX graphs, the sampling loop in numpy (`numpy_schedulers`). The CUDA execution provider is
used only when the session really got it. The starting noise is the PyTorch backend's
(`noise`), so the deterministic samplers (Euler, DPM++ 2M Karras, DDIM; LCM in one step)
give that backend's images; "Euler a" and LCM add numpy noise at each step, so their
images differ from PyTorch's (each image's still from its own seed: `noise.StepNoise`).
With a picture (img2img) and a mask (inpainting), `numpy_pictures` computes what the
PyTorch backend's inpainting pipeline does, with the folder's VAE encoder (exported since
pictures were added).

ControlNets (`request.controls`, exported ControlNet folders) run beside the UNet at each
step (`onnx_controls`), their sessions kept for the next request. LoRAs (`<lora:…>` and
`request.loras`) are fused into the weights they change when the sessions are built
(`onnx_loras`): the base sessions stay, and those of the last LoRA set are kept until
another set comes (each holds its own copy of the parts it changes). Folders exported
before either refuse them, before anything runs, saying to export again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sd_backends import library
from sd_backends.architecture import CONTROLNET, LORA
from sd_backends.noise import StepNoise, initial_noise
from sd_backends.numpy_pictures import generation_geometry, sample
from sd_backends.numpy_schedulers import ONNX_SAMPLERS, Sampler, guidance_embedding
from sd_backends.onnx_controls import (
    ControlRun,
    OnnxControlNet,
    check_fits,
    control_input,
    controlnet_index,
    residual_name,
    step_residuals,
)
from sd_backends.onnx_loras import AGAIN, changed_initializers, read_weight_map
from sd_backends.pictures import PictureJob
from sd_backends.preview import SD_FACTORS, SDXL_FACTORS, latents_to_rgb
from studio.api import (
    DECODING,
    Candidate,
    Control,
    GenerationContext,
    GenerationRequest,
    ModelFile,
    ModelFileError,
    RequestError,
)

log = logging.getLogger(__name__)
CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"
PARTS = ("text_encoder", "unet", "vae_decoder")
ENCODER = "vae_encoder"  # img2img and inpainting: folders exported before them lack it
FORMATS = ("onnx",)
ROW_BY_ROW = 64 * 64  # latent positions from which the UNet runs one row at a time


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
        self._providers = [CUDA, CPU] if prefer_cuda and CUDA in available else [CPU]
        if CUDA in self._providers:  # a CUDA build on a machine without its libraries: quiet
            ort.set_default_logger_severity(4)
        self.folder, self._threads = folder, threads
        self._shrink = ort.RunOptions()  # a run shrinks the CPU arena it grew (`Session`)
        self._shrink.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        self.base = {part: self.session(folder / part / "model.onnx") for part in parts}
        self.sessions = dict(self.base)  # the parts of the LoRA set in use
        self.provider = self.sessions["unet"].get_providers()[0]  # what it really got
        self.weight_map = read_weight_map(folder, self.index)  # None: exported before LoRAs
        self.residuals = [tuple(r) for r in self.index.get("unet_control_residuals") or []]
        self._lora_key: tuple = ()
        self._lora_sessions: dict[str, Any] = {}
        self._lora_values: list[Any] = []  # what those sessions read their weights from
        self._zeros: dict[tuple[int, ...], np.ndarray] = {}

    def session(self, graph: Path, initializers: Mapping[str, np.ndarray] | None = None) -> Any:
        """A session of one graph; `initializers` replace the values of its external
        data (before the graph is optimised) and must outlive it."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self._threads
        options.log_severity_level = 3
        # its threads stop spinning after each run: a ControlNet's and the UNet's sessions
        # run in turn, and one's spinning threads would take the other's cores
        options.add_session_config_entry("session.force_spinning_stop", "1")
        # Memory (SD 1.5 at real size, 512², issue 24; `bench/bench_onnx_memory.py`): the
        # CPU arena and memory patterns stay on (without the arena a UNet call peaks 1 GB
        # higher: 7.7 GB), prepacking too (it replaces the weights it packs, no
        # second copy: off, only the load-time RSS drops, 4.45 -> 3.08 GB, as the weights
        # stay memory-mapped until touched; the peak does not). What costs is that each
        # session's arena keeps what its biggest run grew it to: the UNet's 2.3 GB, then
        # the VAE decoder's 1.1 GB beside it, more at the second step: 10.2 GB against
        # PyTorch's 5.9. One arena shared by all sessions grows too (9.1 GB). So runs on
        # large latents give their working memory back (`Session`): 6.9 GB (5.7 with the
        # UNet row by row, `unet`), and 4.5 GB between requests.
        if initializers:
            values = [ort.OrtValue.ortvalue_from_numpy(v) for v in initializers.values()]
            options.add_external_initializers(list(initializers), values)
            self._lora_values.append(values)
        session = ort.InferenceSession(str(graph), options, providers=self._providers)
        return Session(session, self._shrink)

    def use_loras(self, key: tuple, deltas: Callable[[], Iterable[tuple[str, np.ndarray]]]) -> None:
        """Run with the LoRA set `key` (() for none): the base sessions, or sessions of
        the parts `deltas` (merged changes by torch name, matched before the first)
        change, built on first use and kept until another set comes."""
        self.sessions = dict(self.base)
        if not key:
            return
        if key != self._lora_key:
            assert self.weight_map is not None
            changes = deltas()  # a LoRA that does not fit is refused here
            self._lora_key, self._lora_sessions, self._lora_values = (), {}, []
            changed = changed_initializers(self.folder, self.weight_map, changes)
            self._lora_sessions = {
                part: self.session(self.folder / part / "model.onnx", values)
                for part, values in changed.items()
            }
            self._lora_key = key
        self.sessions |= self._lora_sessions

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
        self,
        sample: np.ndarray,
        timestep: float,
        context: np.ndarray,
        extra: dict[str, np.ndarray],
        residuals: Sequence[np.ndarray] | None = None,
    ) -> np.ndarray:
        """The UNet's prediction; `residuals` are the ControlNets' (zeros without). From
        64 x 64 latents (SD 1.5 at 512²) one row at a time: its attention's score matrices
        take 0.5 GB a row (8 heads x 4,096² floats, twice with their softmax), where
        PyTorch's attention never holds them whole; the same speed and values, and the
        peak of a guided 512² request 5.7 GB instead of 6.9 (PyTorch 5.9)."""
        rows = len(sample)
        if rows > 1 and sample.shape[-2] * sample.shape[-1] >= ROW_BY_ROW:

            def row(value: np.ndarray, i: int) -> np.ndarray:
                return value[i : i + 1] if len(value) == rows else value  # (1, ...) broadcast

            return np.concatenate(
                [
                    self.unet(
                        row(sample, i),
                        timestep,
                        row(context, i),
                        {name: row(value, i) for name, value in extra.items()},
                        None if residuals is None else [row(r, i) for r in residuals],
                    )
                    for i in range(rows)
                ]
            )
        t = np.full(len(sample), timestep, np.float32)
        inputs = {"sample": sample, "timestep": t, "encoder_hidden_states": context, **extra}
        height, width = sample.shape[-2:]
        for i, (channels, factor) in enumerate(self.residuals):
            shape = (len(sample), channels, -(-height // factor), -(-width // factor))
            if residuals is None:
                value = self._zeros.get(shape)
                if value is None:
                    value = self._zeros[shape] = np.zeros(shape, np.float32)
            else:  # pooled ones are (B, C, 1, 1)
                value = np.ascontiguousarray(np.broadcast_to(residuals[i], shape))
            inputs[residual_name(i, len(self.residuals))] = value
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
        self._controlnets: dict[Path, OnnxControlNet] = {}  # the last request's

    def device(self) -> str:
        if self._runtime is None:
            return "cpu"
        return f"{'cuda' if self._runtime.provider == CUDA else 'cpu'} ({self._runtime.provider})"

    def load(self, model: str) -> None:
        found = library.find(self.model_library, model, self.formats)
        self._runtime, self._controlnets = None, {}  # the old model's memory goes first
        self._runtime = OnnxDiffusion(found.path, self.threads)
        self._model = found

    def unload(self) -> None:
        self._runtime, self._model, self._controlnets = None, None, {}

    def generate(self, request: GenerationRequest, ctx: GenerationContext) -> list[Candidate]:
        runtime = self._runtime
        if runtime is None:
            raise RuntimeError("no model is loaded")
        name = self.sampler_name(request)
        if name not in ONNX_SAMPLERS:
            raise ValueError(f"sampler {name!r} is not available with ONNX (use {ONNX_SAMPLERS})")
        prompt, loras = request.split_loras()  # the text the encoder sees: no tags
        if not prompt.strip():
            raise RequestError(["the prompt is empty"])  # as the PyTorch backend says
        lora_set = self._lora_set(loras, runtime)  # found, and refused before anything runs
        folders = self._find_controls(request.controls, runtime)
        job = None if request.image is None else self._picture_job(request, runtime)
        width, height = (request.width, request.height) if job is None else job.canvas.generation
        runtime.use_loras(*lora_set)
        nets = self._load_controls(folders, runtime)
        seeds = [(request.seed + i) % 2**32 for i in range(request.count)]
        scale = int(runtime.index.get("vae_scale_factor", 8))
        channels = int(runtime.index.get("vae_latent_channels", 4))
        noise = initial_noise(seeds, (channels, height // scale, width // scale))
        # LCM-distilled UNets take the guidance scale as an input, in one pass per image
        cond_dim = runtime.index.get("unet_time_cond_proj_dim")
        guided = request.guidance > 1.0 and not cond_dim
        context, pooled = runtime.encode([prompt])
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
        canvas = None if job is None else job.canvas
        control_runs = [
            ControlRun(
                net,
                np.repeat(control_input(c, (width, height), canvas), rows, axis=0),
                c.weight,
                c.start,
                c.end,
            )
            for net, c in zip(nets, request.controls, strict=True)
        ]
        sampler = Sampler(name, runtime.scheduler, request.steps)
        runs = request.steps if job is None else request.steps - job.first_step(request.steps)
        done = [0]  # steps run: which ControlNets act at the next

        def denoise(x: np.ndarray, timestep: float) -> np.ndarray:
            ctx.check_cancelled()
            batch = np.concatenate([x, x]) if guided else x
            residuals = step_residuals(
                control_runs, done[0], runs, batch, timestep, context, extra, guided
            )
            out = runtime.unet(batch, timestep, context, extra, residuals)
            if not guided:
                return out
            uncond, cond = np.split(out, 2)
            return uncond + request.guidance * (cond - uncond)

        def on_step(i: int, latents: np.ndarray) -> None:
            done[0] = i + 1
            ctx.progress(i + 1, runs)
            ctx.preview(latents_to_rgb(latents, factors))

        rng = StepNoise(seeds)  # ancestral samplers' noise: each image's own
        if job is None:
            latents = sampler.run(noise, denoise, rng, on_step)
        else:
            in_channels = int(runtime.index.get("unet_in_channels", 4))
            latents = sample(
                job, sampler, noise, runtime.encode_image, denoise, rng, on_step, in_channels
            )
        ctx.progress(0, 1, DECODING)  # in one piece; raises Cancelled as check_cancelled
        images = runtime.decode(latents)
        ctx.progress(1, 1, DECODING)
        made = list(images) if job is None else job.put_back(images)
        return [Candidate(image, seed=seed) for image, seed in zip(made, seeds, strict=True)]

    def _lora_set(
        self, loras: Sequence[Any], runtime: OnnxDiffusion
    ) -> tuple[tuple, Callable[[], Iterable[tuple[str, np.ndarray]]]]:
        """(the set's key, its merged deltas when asked): LoRAs at weight 0 left out."""
        from sd_backends.loras import iter_deltas, read_lora

        chosen = [lora for lora in loras if lora.weight]
        if not chosen:
            return (), lambda: ()
        if runtime.weight_map is None:
            raise ModelFileError(
                f"{self._name()} was exported to ONNX before LoRAs (it has no map of its "
                f"weights): {AGAIN}"
            )
        files = []
        for lora in chosen:
            found = library.find_addon(self.model_library, lora.model, LORA, self.lora_formats)
            stat = found.path.stat()
            files.append((found.path.resolve(), stat.st_size, stat.st_mtime_ns, lora.weight))
        targets = runtime.weight_map.targets()

        def deltas() -> Iterable[tuple[str, np.ndarray]]:
            return iter_deltas([(read_lora(path), w) for path, _, _, w in files], targets)

        return tuple(files), deltas

    def _find_controls(self, controls: Sequence[Control], runtime: OnnxDiffusion) -> list[Path]:
        """Each ControlNet's exported folder, checked against the model (nothing loaded)."""
        folders = []
        for control in controls:
            found = library.find_addon(
                self.model_library, control.model, CONTROLNET, ("onnx", "diffusers", "safetensors")
            )
            if found.format != "onnx":
                raise ModelFileError(
                    f"ControlNet {found.name} is {found.format}: the ONNX backend runs "
                    f"ControlNets exported to ONNX (`studio sd-export-onnx {found.name} OUT`)"
                )
            check_fits(found.name, controlnet_index(found.path), runtime.index, self._name())
            folders.append(found.path)
        return folders

    def _load_controls(self, folders: list[Path], runtime: OnnxDiffusion) -> list[OnnxControlNet]:
        """Their sessions: the last request's are kept, the others let go."""
        kept = {f: self._controlnets[f] for f in folders if f in self._controlnets}
        self._controlnets = kept
        for folder in folders:
            if folder not in kept:
                kept[folder] = OnnxControlNet(folder, runtime.session)
        return [kept[f] for f in folders]

    def _name(self) -> str:
        return self._model.name if self._model else "this model"

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


class Session:
    """An ONNX Runtime session whose runs on large latents (`ROW_BY_ROW` positions or
    more; pictures for the VAE encoder) give their arena's growth back (`shrink`: run
    options with memory.enable_memory_arena_shrinkage): gigabytes there, a few hundred
    MB below, where giving it back at every step costs a small model's request 19 %
    (4.99 vs 4.19 s, `bench_diffusion.py`'s model). Anything else is the session's."""

    def __init__(self, session: Any, shrink: Any) -> None:
        self.session, self._shrink = session, shrink

    def run(self, output_names: Sequence[str] | None, inputs: Mapping[str, Any]) -> list[Any]:
        sample = inputs.get("sample", inputs.get("latent_sample"))
        shape = getattr(sample, "shape", ())
        large = len(shape) == 4 and shape[-2] * shape[-1] >= ROW_BY_ROW
        return self.session.run(output_names, inputs, self._shrink if large else None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.session, name)


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
