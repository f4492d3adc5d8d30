"""The samplers a user picks by name, as diffusers schedulers made from the model's own
scheduler configuration (so its noise schedule and prediction type are kept)."""

from __future__ import annotations

from typing import Any

# name -> (diffusers class, settings over the model's configuration); the first: default
SAMPLERS: dict[str, tuple[str, dict[str, Any]]] = {
    "Euler": ("EulerDiscreteScheduler", {}),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "DDIM": ("DDIMScheduler", {}),
    "LCM": ("LCMScheduler", {}),  # for distilled (LCM) models: 4-8 steps, guidance 1-2
}


def make_scheduler(name: str, config: Any) -> Any:
    import diffusers

    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r} (known: {', '.join(SAMPLERS)})")
    class_name, settings = SAMPLERS[name]
    return getattr(diffusers, class_name).from_config(config, **settings)
