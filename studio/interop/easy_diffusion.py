"""Easy Diffusion: one PNG text chunk per setting, under its request's names ("prompt",
"num_inference_steps", "use_stable_diffusion_model", …), values as text. Its "prompt"
chunk is plain text, where ComfyUI's is a JSON graph."""

from __future__ import annotations

from studio.interop.entries import Entries
from studio.interop.found import Found

FIELDS = {
    "prompt": "prompt",
    "negative_prompt": "negative_prompt",
    "seed": "seed",
    "num_inference_steps": "steps",
    "guidance_scale": "guidance",
    "width": "width",
    "height": "height",
    "use_stable_diffusion_model": "model",
    "sampler_name": "sampler",
}
MARKERS = ("num_inference_steps", "use_stable_diffusion_model", "guidance_scale")


def read(entries: Entries) -> list[Found]:
    if not any(key in entries.texts for key in MARKERS):
        return []
    found = Found("easy-diffusion")
    for key, name in FIELDS.items():
        found.put(name, entries.get(key))
    return [found]
