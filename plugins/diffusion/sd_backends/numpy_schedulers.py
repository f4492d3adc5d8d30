"""Samplers in numpy for the ONNX backend, computing what diffusers' schedulers compute
from the same scheduler configuration (so the two backends make the same images)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sd_backends.noise import StepNoise

ONNX_SAMPLERS = ("Euler", "Euler a", "DPM++ 2M Karras", "DDIM", "LCM")
_UNSUPPORTED = (
    "use_karras_sigmas",
    "use_exponential_sigmas",
    "use_beta_sigmas",
    "rescale_betas_zero_snr",
    "thresholding",
    "trained_betas",
)


def alphas_cumprod(config: dict[str, Any]) -> np.ndarray:
    n = config.get("num_train_timesteps", 1000)
    start, end = config.get("beta_start", 0.0001), config.get("beta_end", 0.02)
    schedule = config.get("beta_schedule", "linear")
    if schedule == "scaled_linear":
        betas = np.linspace(start**0.5, end**0.5, n, dtype=np.float32) ** 2
    elif schedule == "linear":
        betas = np.linspace(start, end, n, dtype=np.float32)
    else:
        raise ValueError(f"beta schedule {schedule!r} is not supported by the ONNX backend")
    return np.cumprod(1.0 - betas, dtype=np.float32)


def timesteps(config: dict[str, Any], steps: int, default_spacing: str) -> np.ndarray:
    """The model's timesteps, from the noisiest down, as diffusers spaces them."""
    n = config.get("num_train_timesteps", 1000)
    spacing = config.get("timestep_spacing", default_spacing)
    if spacing == "linspace":
        return np.linspace(0, n - 1, steps, dtype=np.float64)[::-1].copy()
    if spacing == "leading":
        ratio = n // steps
        return (np.arange(0, steps) * ratio).round()[::-1].astype(np.float64) + config.get(
            "steps_offset", 0
        )
    if spacing == "trailing":
        return np.round(np.arange(n, 0, -n / steps)).astype(np.float64) - 1
    raise ValueError(f"timestep spacing {spacing!r} is not supported by the ONNX backend")


Denoise = Callable[[np.ndarray, float], np.ndarray]  # (model input, timestep) -> prediction
Blend = Callable[[int, np.ndarray], np.ndarray]  # (step, latents after it) -> latents


@dataclass
class Sampler:
    name: str
    config: dict[str, Any]
    steps: int

    def run(
        self,
        noise: np.ndarray,
        denoise: Denoise,
        rng: StepNoise,
        on_step: Callable[[int, np.ndarray], None],
        first: int = 0,
        start: np.ndarray | None = None,
        blend: Blend | None = None,
    ) -> np.ndarray:
        """Latents denoised from `noise` (scaled to the first noise level here), or from
        `start` (latents already at step `first`'s level: `noised`) through the steps from
        `first` on, as diffusers' img2img truncates the schedule; `blend(i, latents)` after
        step i of the schedule replaces them (inpainting puts the picture's back) and
        `on_step(n, latents)` follows the n-th step that runs."""
        implied = {"use_karras_sigmas"} if self.name == "DPM++ 2M Karras" else set()
        unsupported = [k for k in _UNSUPPORTED if self.config.get(k) and k not in implied]
        if self.config.get("interpolation_type", "linear") != "linear":
            unsupported.append("interpolation_type")
        if unsupported:
            raise ValueError(
                f"the ONNX backend does not support this model's scheduler "
                f"settings: {', '.join(unsupported)}"
            )
        if not 0 <= first < self.steps:
            raise ValueError(f"step {first} is not one of the {self.steps} steps")
        x = (noise * self.init_noise_sigma() if start is None else start).astype(np.float32)

        def after(i: int, latents: np.ndarray) -> np.ndarray:
            latents = latents if blend is None else blend(i, latents)
            on_step(i - first, latents)
            return latents

        steps = range(first, self.steps)
        if self.name == "DDIM":
            return self._ddim(x, denoise, steps, after)
        if self.name == "DPM++ 2M Karras":
            return self._dpmpp_2m_karras(x, denoise, steps, after)
        if self.name == "LCM":
            return self._lcm(x, denoise, rng, steps, after)
        return self._euler(x, denoise, rng, steps, after, ancestral=self.name == "Euler a")

    def init_noise_sigma(self) -> float:
        """The scale of the starting noise when the whole schedule runs (diffusers'
        `init_noise_sigma`): Euler's starts at its top sigma, the others at unit variance."""
        if self.name not in ("Euler", "Euler a"):
            return 1.0
        top = float(self._euler_schedule()[1].max())
        spacing = self.config.get("timestep_spacing", "linspace")
        return top if spacing in ("linspace", "trailing") else (top**2 + 1) ** 0.5

    def timesteps(self) -> np.ndarray:
        """The model timesteps of the whole schedule, from the noisiest down."""
        if self.name == "DDIM":
            return self._ddim_timesteps().astype(np.float64)
        if self.name == "DPM++ 2M Karras":
            return karras_sigmas(self.config, self.steps)[1]
        if self.name == "LCM":
            return self._lcm_timesteps().astype(np.float64)
        return self._euler_schedule()[0]

    def noised(self, clean: np.ndarray, noise: np.ndarray, step: int) -> np.ndarray:
        """Clean latents noised to the level the latents have before `step` of the schedule,
        in the form this sampler holds them (diffusers' `add_noise`)."""
        if self.name in ("DDIM", "LCM"):
            alpha = float(alphas_cumprod(self.config)[int(self.timesteps()[step])])
            return (alpha**0.5 * clean + (1 - alpha) ** 0.5 * noise).astype(np.float32)
        if self.name == "DPM++ 2M Karras":
            sigma = float(karras_sigmas(self.config, self.steps)[0][step])
            alpha = 1 / (sigma**2 + 1) ** 0.5
            return (alpha * clean + sigma * alpha * noise).astype(np.float32)
        sigma = float(self._euler_schedule()[1][step])
        return (clean + sigma * noise).astype(np.float32)

    def _prediction_type(self) -> str:
        kind = self.config.get("prediction_type", "epsilon")
        if kind not in ("epsilon", "v_prediction"):
            raise ValueError(f"prediction type {kind!r} is not supported by the ONNX backend")
        return kind

    def _prediction(self, eps: np.ndarray, x: np.ndarray, sigma: float) -> np.ndarray:
        """The denoised image the model's output implies, at noise level `sigma`."""
        if self._prediction_type() == "epsilon":
            return x - sigma * eps
        return eps * (-sigma / (sigma**2 + 1) ** 0.5) + x / (sigma**2 + 1)

    def _euler_schedule(self) -> tuple[np.ndarray, np.ndarray]:
        """Euler's timesteps and their sigmas (then 0), interpolated on the schedule."""
        cumprod = alphas_cumprod(self.config)
        t = timesteps(self.config, self.steps, "linspace")
        all_sigmas = ((1 - cumprod) / cumprod) ** 0.5
        sigmas = np.interp(t, np.arange(len(all_sigmas)), all_sigmas)
        return t, np.concatenate([sigmas, [0.0]]).astype(np.float32)

    def _euler(self, x, denoise, rng, steps, after, ancestral: bool) -> np.ndarray:
        t, sigmas = self._euler_schedule()
        t = t.astype(np.float32)
        for i in steps:
            sigma, following, timestep = float(sigmas[i]), float(sigmas[i + 1]), t[i]
            eps = denoise((x / (sigma**2 + 1) ** 0.5).astype(np.float32), float(timestep))
            derivative = (x - self._prediction(eps, x, sigma)) / sigma
            if ancestral:
                up = (following**2 * (sigma**2 - following**2) / sigma**2) ** 0.5
                down = (following**2 - up**2) ** 0.5
                x = x + derivative * (down - sigma)
                x = x + rng.standard_normal(x.shape, dtype=np.float32) * up
            else:
                x = x + derivative * (following - sigma)
            x = after(i, x.astype(np.float32))
        return x

    def _dpmpp_2m_karras(self, x, denoise, steps, after) -> np.ndarray:
        """DPM-Solver++(2M) on Karras sigmas, as diffusers' multistep solver runs it:
        the model sees the unscaled sample; first order at the first and last steps."""
        v_prediction = self._prediction_type() == "v_prediction"
        sigmas, t = karras_sigmas(self.config, self.steps)
        previous = None
        for i in steps:
            sigma, following, timestep = float(sigmas[i]), float(sigmas[i + 1]), t[i]
            alpha = 1 / (sigma**2 + 1) ** 0.5
            out = denoise(x, float(timestep))
            # the predicted clean latents, x in VP form: alpha * clean + sigma * alpha * noise
            data = (
                alpha * x - sigma * alpha * out
                if v_prediction
                else (x - sigma * alpha * out) / alpha
            )
            last = i == len(t) - 1
            x = _dpmpp_update(
                x,
                sigma,
                following,
                data,
                None if previous is None or last else previous[0],
                None if previous is None else previous[1],
            )
            previous = (data, sigma)
            x = after(i, x)
        return x

    def _ddim_timesteps(self) -> np.ndarray:
        return np.round(timesteps(self.config, self.steps, "leading")).astype(np.int64)

    def _ddim(self, x, denoise, steps, after) -> np.ndarray:
        """Deterministic DDIM (eta 0); unset options take DDIMScheduler's defaults, as
        diffusers does when it makes one from another scheduler's configuration."""
        cumprod = alphas_cumprod(self.config)
        t = self._ddim_timesteps()
        ratio = self.config.get("num_train_timesteps", 1000) // self.steps
        final = 1.0 if self.config.get("set_alpha_to_one", True) else float(cumprod[0])
        clip = (
            self.config.get("clip_sample_range", 1.0)
            if self.config.get("clip_sample", True)
            else None
        )
        for i in steps:
            timestep = t[i]
            eps = denoise(x, float(timestep))
            alpha = float(cumprod[timestep])
            previous = timestep - ratio
            alpha_prev = float(cumprod[previous]) if previous >= 0 else final
            if self._prediction_type() == "v_prediction":
                original = alpha**0.5 * x - (1 - alpha) ** 0.5 * eps
                eps = alpha**0.5 * eps + (1 - alpha) ** 0.5 * x
            else:
                original = (x - (1 - alpha) ** 0.5 * eps) / alpha**0.5
            if clip is not None:
                original = np.clip(original, -clip, clip)
            x = (alpha_prev**0.5 * original + (1 - alpha_prev) ** 0.5 * eps).astype(np.float32)
            x = after(i, x)
        return x

    def _lcm_timesteps(self) -> np.ndarray:
        n = self.config.get("num_train_timesteps", 1000)
        original = self.config.get("original_inference_steps", 50)
        if not 1 <= self.steps <= original:
            raise ValueError(f"LCM takes 1 to {original} steps for this model, not {self.steps}")
        grid = (np.arange(1, original + 1) * (n // original) - 1)[::-1]  # the distillation's
        return grid[np.floor(np.linspace(0, original, self.steps, endpoint=False)).astype(np.int64)]

    def _lcm(self, x, denoise, rng, steps, after) -> np.ndarray:
        """Latent-consistency sampling, for LCM-distilled models, as LCMScheduler runs it:
        each step predicts the clean latents (with the consistency boundary scalings) and,
        but for the last, noises them again down to the next timestep."""
        t = self._lcm_timesteps()
        cumprod = alphas_cumprod(self.config)
        scaling = self.config.get("timestep_scaling", 10.0)
        clip = self.config.get("clip_sample_range", 1.0) if self.config.get("clip_sample") else None
        v_prediction = self._prediction_type() == "v_prediction"
        for i in steps:
            timestep = t[i]
            out = denoise(x, float(timestep))
            alpha = float(cumprod[timestep])
            if v_prediction:
                original_sample = alpha**0.5 * x - (1 - alpha) ** 0.5 * out
            else:
                original_sample = (x - (1 - alpha) ** 0.5 * out) / alpha**0.5
            if clip is not None:
                original_sample = np.clip(original_sample, -clip, clip)
            scaled = float(timestep) * scaling  # sigma_data 0.5
            c_skip, c_out = 0.25 / (scaled**2 + 0.25), scaled / (scaled**2 + 0.25) ** 0.5
            x = c_out * original_sample + c_skip * x
            if i < len(t) - 1:
                following = float(cumprod[t[i + 1]])
                fresh = rng.standard_normal(x.shape, dtype=np.float32)
                x = following**0.5 * x + (1 - following) ** 0.5 * fresh
            x = after(i, x.astype(np.float32))
        return x


def guidance_embedding(guidance: float, count: int, dim: int) -> np.ndarray:
    """The guidance scale as LCM-distilled UNets take it (`timestep_cond`): sinusoids of
    (guidance - 1) * 1000, as diffusers' pipelines compute them, one row per image."""
    w = (guidance - 1.0) * 1000.0
    half = dim // 2
    frequencies = np.exp(np.arange(half, dtype=np.float32) * -(np.log(10000.0) / (half - 1)))
    row = np.concatenate([np.sin(w * frequencies), np.cos(w * frequencies)])
    row = np.pad(row, (0, dim % 2))
    return np.repeat(row[None].astype(np.float32), count, axis=0)


def karras_sigmas(config: dict[str, Any], steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Karras et al.'s noise levels between the schedule's extremes (rho 7), and the
    model timesteps they fall on (interpolated in log sigma, rounded)."""
    cumprod = alphas_cumprod(config)
    all_sigmas = ((1 - cumprod) / cumprod) ** 0.5
    log_sigmas = np.log(all_sigmas)
    low, high = float(all_sigmas[0]), float(all_sigmas[-1])
    ramp = np.linspace(0, 1, steps)
    sigmas = (high ** (1 / 7) + ramp * (low ** (1 / 7) - high ** (1 / 7))) ** 7
    distances = np.log(np.maximum(sigmas, 1e-10))[None] - log_sigmas[:, None]
    below = np.clip(np.cumsum(distances >= 0, axis=0).argmax(axis=0), 0, len(log_sigmas) - 2)
    weight = (log_sigmas[below] - np.log(sigmas)) / (log_sigmas[below] - log_sigmas[below + 1])
    timesteps = np.round(below + np.clip(weight, 0, 1))
    return np.concatenate([sigmas, [0.0]]).astype(np.float32), timesteps


def _dpmpp_update(x, sigma, following, data, previous_data, previous_sigma):
    """One DPM-Solver++ step in VP form, second order when the previous prediction is
    given (the midpoint rule), else first order."""

    def alpha_sigma(s: float) -> tuple[float, float]:
        alpha = 1 / (s**2 + 1) ** 0.5
        return alpha, s * alpha

    alpha_t, sigma_t = alpha_sigma(following)
    alpha_s, sigma_s = alpha_sigma(sigma)
    with np.errstate(divide="ignore"):
        lambda_t = np.log(alpha_t) - np.log(sigma_t)  # +inf at the last step (sigma 0)
    lambda_s = np.log(alpha_s) - np.log(sigma_s)
    h = lambda_t - lambda_s
    decay = np.expm1(-h)  # exp(-h) - 1
    x_next = (sigma_t / sigma_s) * x - alpha_t * decay * data
    if previous_data is not None:
        alpha_p, sigma_p = alpha_sigma(previous_sigma)
        r = (lambda_s - (np.log(alpha_p) - np.log(sigma_p))) / h
        x_next = x_next - 0.5 * alpha_t * decay * (data - previous_data) / r
    return x_next.astype(np.float32)
