"""Image i of a request is a pure function of (request, i): candidate i draws from its own
stream, seeded with seed + i. So it is the same alone or in any batch, on either runtime
(they draw the same numbers), and the seed recorded with it draws it again. Recorded
digests catch any unintended change of the shipped model's images."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from contexts import Context

from shapes_backend.backend import ShapesBackend
from shapes_backend.onnx_backend import ShapesOnnxBackend
from studio.api import GenerationRequest

# First 16 hex digits of the SHA-256 of each candidate's RGB bytes, best first: the same
# for both runtimes (recorded when candidates got their own streams).
RECORDED = {
    ("two red circles", 7): [
        "43b4b355e242cde5", "0fc9378b4c4006e9", "73b55417f4562d52", "71538ba8dc4c7036",
        "0cb642d1d09864ca", "d58a0824c2007fcd", "e2e38bb76ed8f5bb", "45d3630df51f5c22",
    ],
    ("a blue square above a yellow triangle on a black background", 11): [
        "b1f2d0de5e925d78", "c9ccea7062c980d4", "bdb6c346cd789cf2", "5c1ebb471c19556b",
        "1636c0a1e20563d5", "b3c5cb69e6a76108", "a830842806860d87", "d9ce95c90d518d61",
    ],
}  # fmt: skip
RUNTIMES = {"onnx": ShapesOnnxBackend, "torch": ShapesBackend}


def digest(image) -> str:
    return hashlib.sha256(np.asarray(image).tobytes()).hexdigest()[:16]


@pytest.fixture(scope="module", params=RUNTIMES)
def backend(request):
    backend = RUNTIMES[request.param]()
    backend.threads = 1
    backend.load("")
    return backend


def test_the_shipped_model_draws_the_recorded_images(backend) -> None:
    for (prompt, seed), expected in RECORDED.items():
        request = GenerationRequest(prompt=prompt, count=4, candidates=8, seed=seed)
        drawn = backend.generate(request, Context())
        assert [digest(c.image) for c in drawn] == expected, prompt


def test_each_candidate_is_its_own_seed_alone(backend) -> None:
    prompt = "a cyan triangle and a purple star"
    batch = backend.generate(
        GenerationRequest(prompt=prompt, count=2, candidates=8, seed=40), Context()
    )
    assert sorted(c.seed for c in batch) == list(range(40, 48))  # each with its own seed
    for candidate in batch[:3]:
        alone = GenerationRequest(prompt=prompt, count=1, candidates=1, seed=candidate.seed)
        (again,) = backend.generate(alone, Context())
        assert digest(again.image) == digest(candidate.image)
        assert again.score == pytest.approx(candidate.score, abs=1e-4)
    part = GenerationRequest(prompt=prompt, count=3, candidates=3, seed=43)  # images 3, 4, 5
    assert {digest(c.image) for c in backend.generate(part, Context())} == {
        digest(c.image) for c in batch if 43 <= c.seed < 46
    }
