"""The request type: immutable, validated, seed always recorded, JSON round trip."""

from __future__ import annotations

import dataclasses

import pytest

from studio.core.backend import Capabilities
from studio.core.request import MAX_PROMPT_CHARS, GenerationRequest, RequestError


def test_seed_is_drawn_and_recorded() -> None:
    seeds = {GenerationRequest("a red circle").seed for _ in range(20)}
    assert len(seeds) > 1
    assert all(isinstance(s, int) and 0 <= s < 2**32 for s in seeds)
    assert GenerationRequest("x", seed=7).seed == 7


def test_is_immutable_and_replace_validates() -> None:
    request = GenerationRequest("a red circle", seed=1, options={"top_k": 32})
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.prompt = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        request.options["top_k"] = 1  # type: ignore[index]
    assert request.replace(seed=2).seed == 2
    with pytest.raises(RequestError, match="prompt is empty"):
        request.replace(prompt="  ")


def test_candidates_default_to_count() -> None:
    assert GenerationRequest("x", count=3).candidates == 3
    assert GenerationRequest("x", count=3, candidates=16).candidates == 16


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"prompt": ""}, "the prompt is empty"),
        ({"prompt": " \n\t "}, "the prompt is empty"),
        ({"prompt": "x" * (MAX_PROMPT_CHARS + 1)}, "characters long"),
        ({"prompt": "a\x00b"}, "NUL"),
        ({"prompt": "x", "count": 0}, "images to show must be from 1"),
        ({"prompt": "x", "count": 4, "candidates": 2}, "candidates must be from"),
        ({"prompt": "x", "width": 0}, "width must be from 1"),
        ({"prompt": "x", "seed": -1}, "seed must be"),
        ({"prompt": "x", "guidance": float("nan")}, "guidance must be"),
        ({"prompt": "x", "options": {"f": object()}}, "plain JSON"),
    ],
)
def test_bad_requests_get_clear_messages(fields, message) -> None:
    with pytest.raises(RequestError, match=message):
        GenerationRequest(**fields)


def test_all_problems_are_reported_at_once() -> None:
    with pytest.raises(RequestError) as caught:
        GenerationRequest("", count=0, width=0)
    assert len(caught.value.problems) == 3


def test_json_round_trip_keeps_unicode() -> None:
    prompt = 'שלום 🌈 «red» circle,\nsecond line: "quoted"'
    request = GenerationRequest(prompt, negative_prompt="blurry", seed=5, options={"k": [1, 2]})
    again = GenerationRequest.from_dict({**request.to_dict(), "from_the_future": 1})
    assert again == request
    assert '"שלום 🌈' in request.to_json()


def test_capabilities_check_sizes_and_features() -> None:
    caps = Capabilities(min_size=64, max_size=512, size_multiple=64, max_steps=50)
    assert caps.problems(GenerationRequest("x", width=128, height=64, steps=20)) == []
    problems = caps.problems(
        GenerationRequest("x", width=100, height=1024, steps=80, negative_prompt="y")
    )
    assert problems == [
        "width 100 must be a multiple of 64",
        "height 1024 is out of range (64 to 512)",
        "steps must be at most 50",
        "this backend does not use a negative prompt",
    ]
    fixed = Capabilities(fixed_sizes=((64, 64),))
    assert "use 64x64" in fixed.problems(GenerationRequest("x", width=32, height=32))[0]


def test_defaults_fill_what_ran_and_only_rankers_sample_more_than_they_show() -> None:
    request = GenerationRequest("a cat", count=2, candidates=8)
    plain = Capabilities(default_steps=25, default_guidance=7.0).with_defaults(request)
    assert (plain.steps, plain.guidance, plain.candidates) == (25, 7.0, 2)
    ranking = Capabilities(ranks=True).with_defaults(request)
    assert ranking.candidates == 8


def test_a_backend_without_steps_takes_the_1_its_image_text_says_and_records_none() -> None:
    stepless = Capabilities(max_size=512)
    refused = stepless.problems(GenerationRequest("x", steps=2))
    assert refused == ["this backend has no steps to set"]
    read_back = GenerationRequest("x", steps=1)  # from "Steps: 1" in its image's text
    assert stepless.problems(read_back) == []
    assert stepless.with_defaults(read_back).steps == 0
