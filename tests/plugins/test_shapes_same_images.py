"""The shipped model draws the same pixels for a seed as it did before the plugin
restructure (the images recorded at commit cc8233b, when the model lived in
`plugins/shapes` and its weights in `resources/`), in both runtimes."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from contexts import Context

from shapes_backend.backend import ShapesBackend
from shapes_backend.onnx_backend import ShapesOnnxBackend
from studio.api import GenerationRequest

# First 16 hex digits of the SHA-256 of each candidate's RGB bytes, best first.
RECORDED = {
    "onnx": {
        ("two red circles", 7): [
            "ee80856879172c13",
            "ecd198a39ad9599b",
            "ecc223bd4934ec1d",
            "0f6b3c279e641f9d",
            "1f244a1299a3f964",
            "f8eaea0bd919efce",
            "d7c4eaf480902bc0",
            "2eec2c2e14b3b862",
        ],
        ("a blue square above a yellow triangle on a black background", 11): [
            "ee57afcda9cb8027",
            "ea7b5ac6c8da91ae",
            "5b2c9a0e7dc8d4d2",
            "5572a7e8f6868b7d",
            "8f3afc0a3be0f3c1",
            "f5ce6bd8274f107a",
            "45c7b430f545fc11",
            "6b165f867e1e3c00",
        ],
    },
    "torch": {
        ("two red circles", 7): [
            "7574c3a55c300003",
            "19737e882d6030d4",
            "d909d02523ec5939",
            "e71b5be05ba15fda",
            "d7c5fb3376f8349d",
            "5b33134242373ef8",
            "91a973373bacedf5",
            "b89f955e110972ae",
        ],
        ("a blue square above a yellow triangle on a black background", 11): [
            "64a75770349fff4f",
            "73b8fcc2d7067992",
            "55005b6bebdac9ed",
            "44c01efa7166dbcd",
            "c4eccd2ab24ad754",
            "5572a7e8f6868b7d",
            "4d38d496186cadef",
            "458be1d75b590044",
        ],
    },
}
RUNTIMES = {"onnx": ShapesOnnxBackend, "torch": ShapesBackend}


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_same_pixels_as_before_the_restructure(runtime: str) -> None:
    backend = RUNTIMES[runtime]()
    backend.threads = 1
    backend.load("")
    for (prompt, seed), expected in RECORDED[runtime].items():
        request = GenerationRequest(prompt=prompt, count=4, candidates=8, seed=seed)
        drawn = backend.generate(request, Context())
        digests = [hashlib.sha256(np.asarray(c.image).tobytes()).hexdigest()[:16] for c in drawn]
        assert digests == expected, (runtime, prompt)
