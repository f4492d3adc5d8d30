"""A scriptable backend for driving the engine in tests. Never shipped.

Behaviour comes from the request's options (so it works in a subprocess too):
`fail_at` (raise at that step), `oom_at` (MemoryError at that step), `fail_load`,
`nan` (return NaN images), `too_few`, `step_s` (sleep this long each step), `crash_at`
(the process dies at that step: "abort" by os.abort, "segfault" by reading address 0),
`decode_tiles` (after the steps, reports decoding: 0 for one piece, else that many tiles);
the model `huge` runs out of memory loading; `big` reports reading BIG_BYTES while it
loads, and waits halfway for LOAD_GATE when a test sets it. With an input picture, each
image is the picture (scaled to the request's size) with the masked part, or without a mask
a share `strength` of its rows, filled with the candidate's colour. `FakeTextOnly` takes
no picture.
Its model knows every word but those made of z, y and x, and reads the first 50 words.
Tests in the same process may also set `GATE` to pause each step until released.
"""

from __future__ import annotations

import ctypes
import os
import re
import threading
import time
from dataclasses import replace

import numpy as np

from studio.api import (
    DECODING,
    Backend,
    Candidate,
    Capabilities,
    GenerationContext,
    GenerationRequest,
    ModelInfo,
    PromptCut,
)

GATE: threading.Event | None = None  # when set by a test, each step waits for it
STEP_STARTED = threading.Event()  # set when a step begins (for tests that cancel mid-step)
LOAD_GATE: threading.Event | None = None  # when set by a test, loading waits for it
LOADING = threading.Event()  # set when a load begins
BIG_BYTES = 4_270_000_000  # what loading the model `big` says it reads, in 10 parts
CALLS: list[str] = []
WORDS_READ = 50  # the fake model's text limit: words split at white space


def solid_image(seed: int, width: int, height: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    colour = rng.integers(0, 256, size=3, dtype=np.uint8)
    return np.broadcast_to(colour, (height, width, 3)).copy()


def crash(how: str) -> None:
    """End this process as a broken native library would."""
    if how == "segfault":
        ctypes.string_at(0)
    os.abort()


class FakeBackend(Backend):
    display_name = "Fake (tests only)"

    def __init__(self) -> None:
        self.loaded: str | None = None

    def capabilities(self) -> Capabilities:
        return Capabilities(
            min_size=8,
            max_size=256,
            size_multiple=8,
            max_count=16,
            max_candidates=64,
            default_steps=4,
            max_steps=100,
            max_guidance=20.0,
            negative_prompt=True,
            samplers=("fake",),
            ranks=True,
            image=True,
            mask=True,
            strength=True,
            default_strength=0.5,
            loras=True,
            controls=2,
        )

    def models(self) -> list[ModelInfo]:
        return [ModelInfo(ref="tiny", name="Tiny fake", hash="0123456789", format="none")]

    def unknown_words(self, prompt: str) -> list[str]:
        """The fake model's vocabulary: every word but those made of z, y and x."""
        return [w for w in prompt.split() if set(w.lower()) <= set("zyx")]

    def prompt_cut(self, prompt: str) -> PromptCut | None:
        words = list(re.finditer(r"\S+", prompt))
        if len(words) <= WORDS_READ:
            return None
        return PromptCut(words[WORDS_READ].start(), f"{WORDS_READ} words")

    def load(self, model: str) -> None:
        CALLS.append(f"load {model}")
        LOADING.set()
        if model == "big":
            for part in range(11):
                self.report_loading(BIG_BYTES * part // 10, BIG_BYTES)
                if part == 5 and LOAD_GATE is not None:
                    LOAD_GATE.wait(10)
        elif LOAD_GATE is not None:
            LOAD_GATE.wait(10)
        if model == "huge":
            raise MemoryError("out of memory loading 'huge' (simulated)")
        if model not in ("", "tiny", "big"):
            raise FileNotFoundError(f"no model named {model!r}")
        self.loaded = model or "tiny"

    def unload(self) -> None:
        CALLS.append("unload")
        self.loaded = None

    def sampler_name(self, request: GenerationRequest) -> str:
        return "fake"

    def generate(self, request: GenerationRequest, ctx: GenerationContext) -> list[Candidate]:
        options = request.options
        steps = request.steps or 4
        for step in range(steps):
            STEP_STARTED.set()
            if GATE is not None:
                GATE.wait(10)
            if options.get("fail_at") == step:
                raise RuntimeError(f"boom at step {step}")
            if options.get("oom_at") == step:
                raise MemoryError(f"out of memory at step {step} (simulated)")
            if options.get("crash_at") == step:
                crash(options.get("crash", "abort"))
            time.sleep(float(options.get("step_s", 0)))
            ctx.preview(solid_image(request.seed + step, request.width, request.height))
            ctx.progress(step + 1, steps)
        if "decode_tiles" in options:
            tiles = int(options["decode_tiles"]) or 1
            for tile in range(tiles + 1):
                ctx.progress(tile, tiles, DECODING)
        if options.get("nan"):
            image = np.full((request.height, request.width, 3), np.nan, dtype=np.float32)
            return [Candidate(image)] * request.count
        n = request.count - 1 if options.get("too_few") else request.candidates
        seeds = [request.seed + i for i in range(n)]
        scored = sorted(((float(np.sin(s)), s) for s in seeds), reverse=True)
        return [Candidate(fake_image(request, s), score=score, seed=s) for score, s in scored]


def fake_image(request: GenerationRequest, seed: int) -> np.ndarray:
    made = solid_image(seed, request.width, request.height)
    for control in request.controls:  # the map where the image is darker: it was given
        assert control.map is not None, "the engine makes the map before the backend runs"
        drawn = np.asarray(control.map.open().convert("RGB").resize(made.shape[1::-1]))
        made = np.minimum(made, drawn)
    if request.image is None:
        return made
    size = (request.width, request.height)
    picture = np.asarray(request.image.open().resize(size))
    if request.mask is not None:
        repaint = np.asarray(request.mask.open().resize(size))[..., None] >= 128
    else:
        rows = np.arange(request.height) < round(request.strength * request.height)
        repaint = np.broadcast_to(rows[:, None, None], made.shape)
    return np.where(repaint, made, picture)


class FakeTextOnly(FakeBackend):
    display_name = "Fake, text only (tests only)"

    def capabilities(self) -> Capabilities:
        return replace(super().capabilities(), image=False, mask=False, strength=False)
