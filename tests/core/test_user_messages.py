"""What a user reads of failures (messages meant for them alone, never a class name, in
this process or arriving from a worker) and of sizes (decimal units, as labelled)."""

from __future__ import annotations

import pytest

from studio.core.errors import first_line, user_message
from studio.core.executors import RemoteError, WorkerDied, describe_error
from studio.core.inputs import InputError
from studio.core.model_files import ModelFileError, PickleRefused
from studio.core.registry import BackendUnavailable
from studio.core.request import RequestError
from studio.core.sizes import readable_size


@pytest.mark.parametrize(
    "error",
    [
        ModelFileError("x.safetensors is an SDXL refiner: add the base model instead"),
        PickleRefused("x.ckpt is a pickled PyTorch checkpoint"),
        RequestError(["width 12 must be a multiple of 8"]),
        InputError("photo.heic is not a picture Studio reads"),
        BackendUnavailable("backend 'x' failed: no module named torch"),
        WorkerDied("the worker process ended"),
    ],
)
def test_errors_meant_for_users_show_their_message_alone(error) -> None:
    expected = str(error).splitlines()[0]
    assert user_message(error) == expected
    remote = RemoteError(*describe_error(error))  # as it arrives from a worker process
    assert user_message(remote) == expected


def test_unexpected_errors_say_so_with_their_message_and_no_class_name() -> None:
    for error in (RuntimeError("boom\nmore"), RemoteError(*describe_error(RuntimeError("boom")))):
        assert user_message(error) == "the backend failed unexpectedly: boom (details in the log)"
    assert user_message(KeyError("vocabulary"), "backend 'x'") == (
        "backend 'x' failed unexpectedly: 'vocabulary' (details in the log)"
    )
    # with nothing else to say, the class name is all there is
    assert first_line(ZeroDivisionError()) == "ZeroDivisionError"
    assert first_line(RemoteError(*describe_error(ZeroDivisionError()))) == "ZeroDivisionError"


@pytest.mark.parametrize(
    ("n", "shown"),
    [
        (4_265_146_304, "4.27 GB"),  # SD 1.5 in fp32: as model sites and file managers say
        (2_132_573_152, "2.13 GB"),
        (999_999_999, "1.00 GB"),  # rounds up into the next unit, not "1000.0 MB"
        (994_000_000, "994.0 MB"),
        (334_643_268, "334.6 MB"),
        (3_200, "3.2 kB"),
        (12, "12 bytes"),
        (1, "1 byte"),
        (0, "0 bytes"),
        (6_938_000_000_000, "6.94 TB"),
    ],
)
def test_readable_sizes_are_decimal_units(n, shown) -> None:
    assert readable_size(n) == shown
