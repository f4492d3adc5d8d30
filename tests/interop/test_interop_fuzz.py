"""A few thousand mutated files through the readers (`bench/fuzz_metadata.py` runs a
million): no exception but `MetadataError`, and no read that runs away."""

from __future__ import annotations

import io
import random
import time
import warnings

from support.foreign_images import collection
from support.metadata_fuzz import mutate

from studio.interop import MetadataError, read

COUNT = 3_000
RUNAWAY_CPU_S = 1.0  # a hang guard; the bench reports the real figure (target 100 ms)


def test_mutated_metadata_never_crashes_the_readers() -> None:
    seeds = [image.data for image in collection() if image.fuzz]
    rng = random.Random(20261206)
    refused = worst = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns of corrupt EXIF
        for index in range(COUNT):
            data = mutate(rng.choice(seeds), rng)
            began = time.process_time()
            try:
                read(io.BytesIO(data))
            except MetadataError:
                refused += 1
            except Exception as error:  # pragma: no cover - the finding
                path = f"fuzz-failure-{index}.bin"
                with open(path, "wb") as out:
                    out.write(data)
                raise AssertionError(f"input {index} (written to {path}): {error!r}") from error
            worst = max(worst, time.process_time() - began)
    assert worst < RUNAWAY_CPU_S
    assert 0 < refused < COUNT  # damage is found, and most inputs still read
