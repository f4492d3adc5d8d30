"""The fake backend with add-ons in its "library": LoRAs and ControlNets of two
families, for the pickers of the Generate tab. Never shipped."""

from __future__ import annotations

from fake_backend import FakeBackend

from studio.api import ModelInfo

ADDONS = [
    ModelInfo("/lib/ink.safetensors", "ink", architecture="SD 1.x", kind="lora"),
    ModelInfo("/lib/glow.safetensors", "glow", architecture="unknown", kind="lora"),
    ModelInfo("/lib/xl-only.safetensors", "xl-only", architecture="SDXL", kind="lora"),
    ModelInfo("/lib/edges.safetensors", "edges", architecture="SD 1.x", kind="controlnet"),
]


class FakeWithAddons(FakeBackend):
    display_name = "Fake with add-ons (tests only)"

    def models(self) -> list[ModelInfo]:
        return [
            ModelInfo(
                ref="tiny",
                name="Tiny fake",
                hash="0123456789",
                format="none",
                architecture="SD 1.x",
                native_size=512,
            )
        ]

    def addons(self) -> list[ModelInfo]:
        return list(ADDONS)
