"""A backend that draws exactly what a Shapes prompt asks for (tests only).

It drives `studio eval` end to end: every image it makes should pass the judge.
"""

from __future__ import annotations

from shapes_backend.parser import parse_prompt
from shapes_lab.render import render_array
from shapes_lab.sampler import SceneSampler
from studio.api import (
    Backend,
    Candidate,
    Capabilities,
    GenerationContext,
    GenerationRequest,
    ModelInfo,
)


class OracleBackend(Backend):
    display_name = "Shapes oracle (tests only)"

    def capabilities(self) -> Capabilities:
        return Capabilities(max_count=16, max_candidates=64)

    def models(self) -> list[ModelInfo]:
        return [ModelInfo(ref="oracle", name="Oracle")]

    def load(self, model: str) -> None:
        pass

    def unload(self) -> None:
        pass

    def generate(self, request: GenerationRequest, ctx: GenerationContext) -> list[Candidate]:
        spec = parse_prompt(request.prompt)
        sampler = SceneSampler(request.seed, pairs="any")
        candidates = []
        for i in range(request.candidates):
            ctx.progress(i + 1, request.candidates)
            scene = sampler.realise(spec)
            candidates.append(Candidate(render_array(scene), score=1.0, seed=request.seed + i))
        return candidates
