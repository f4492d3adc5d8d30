"""Hard prompts: refused with a message, or kept exactly through history and files."""

from __future__ import annotations

import pytest
from PIL import Image

from studio.core.history import HistoryStore
from studio.core.metadata import ImageMetadata, read_metadata
from studio.core.request import MAX_PROMPT_CHARS, GenerationRequest, RequestError

KEPT = [
    "a cat 🐱 on a sofa, 👩🏽‍🎨 style",  # emoji, with joiners and skin tones
    "قطة على أريكة في غرفة المعيشة",  # right-to-left
    "שלום mixed with English and 1234",  # both directions in one line
    "tabs\tand\nnew lines\r\nand a zero\u200bwidth space and \x01 a control character",
    "a prompt\nNegative prompt: that is really part of the prompt\nSteps: 99",  # looks like A1111
    '<script>alert(1)</script> and {"json": true}',
    "x" * MAX_PROMPT_CHARS,  # the longest allowed
]


@pytest.mark.reliability
@pytest.mark.parametrize("prompt", KEPT, ids=range(len(KEPT)))
def test_kept_exactly_through_history_and_file_metadata(tmp_path, prompt) -> None:
    request = GenerationRequest(prompt, negative_prompt=prompt[:100], seed=3, backend="fake")
    with HistoryStore(tmp_path) as store:
        (entry,) = store.save([(Image.new("RGB", (8, 8)), ImageMetadata(request))], "job")
        assert store.get(entry.id).request == request
        if prompt.strip() and "\x01" not in prompt and len(prompt) < 100:
            assert [e.id for e in store.search(prompt.split()[0])] == [entry.id]
    found = read_metadata(entry.path)
    assert found.studio is not None and found.studio.request == request


@pytest.mark.reliability
@pytest.mark.parametrize(
    ("prompt", "says"),
    [
        ("", "empty"),
        ("   \n\t ", "empty"),
        ("a\x00b", "NUL"),
        ("y" * 100_000, f"at most {MAX_PROMPT_CHARS:,}"),
    ],
)
def test_refused_with_a_message(prompt, says) -> None:
    with pytest.raises(RequestError, match=says):
        GenerationRequest(prompt, seed=1, backend="fake")
