"""The built-in model: micro training end to end, sampling, ranking, the PyTorch backend."""

from __future__ import annotations

import itertools
import re
import shutil

import numpy as np
import pytest
import torch
from contexts import Context
from safetensors.numpy import load_file

from shapes_backend import world
from shapes_backend.backend import ShapesBackend
from shapes_backend.model.bundle import (
    IMAGE_TOKENIZER,
    RANKER,
    TEXT_VOCAB,
    TRANSFORMER,
    BundleError,
    Tokenizers,
    load_module,
)
from shapes_backend.model.common import (
    ImageDraws,
    NoKnownWords,
    Phrases,
    SamplingOptions,
    noun_phrase,
    prompt_groups,
)
from shapes_backend.model.image_tokens import FIRST_MASK
from shapes_backend.model.pipeline import ShapesPipeline
from shapes_backend.model.sampling import sample_tokens
from shapes_backend.model.text_tokens import PAD, SPECIALS, UNK, TextTokenizer
from shapes_backend.model.transformer import (
    ShapesTransformer,
    TransformerConfig,
    split_patch_tokens,
)
from shapes_backend.scene import ObjectSpec
from shapes_lab.model.config import get_config
from shapes_lab.model.data import transformer_batches
from shapes_lab.model.train import (
    RunLog,
    Schedule,
    parse_overrides,
    stage_tokenizers,
    stage_transformer,
    train,
)
from shapes_lab.render import render_array
from shapes_lab.sampler import SceneSampler
from studio.api import Cancelled, GenerationRequest


@pytest.fixture(scope="module")
def backend(micro_bundle) -> ShapesBackend:
    backend = ShapesBackend(micro_bundle)
    backend.load("")
    return backend


def request(**fields) -> GenerationRequest:
    return GenerationRequest(
        **{
            "prompt": "three yellow hearts",
            "backend": "shapes",
            "seed": 5,
            "count": 4,
            "candidates": 8,
            **fields,
        }
    )


def test_text_tokenizer_reports_unknown_words() -> None:
    tokenizer = TextTokenizer.build()
    encoded = tokenizer.encode("Two RED boxes wearing hats, please")
    assert encoded.unknown == ("wearing", "hats")
    assert (encoded.ids[:6] != PAD).all() and list(encoded.ids).count(UNK) == 2
    assert tokenizer.decode(encoded.ids) == "two red boxes <unk> <unk> please"
    assert tokenizer.encode("circle " * 100).truncated


def test_the_prompt_cut_is_where_the_words_past_the_text_tokens_start() -> None:
    from shapes_backend.backend import prompt_cut
    from shapes_backend.model.text_tokens import TEXT_LENGTH, cut_at

    assert TEXT_LENGTH == 32
    words = [f"w{i}" for i in range(40)]
    text = ", ".join(words)
    assert text[cut_at(text) :].startswith("w32, w33")
    assert cut_at(" ".join(words[:32]) + " !?") is None  # 32 words and punctuation: all read
    kept = TextTokenizer((*SPECIALS, *words)).encode(text[: cut_at(text)])
    assert kept.ids.tolist() == TextTokenizer((*SPECIALS, *words)).encode(text).ids.tolist()
    # "İ" lowers to two characters: the cut is still an index into the text as written
    odd = "İ-" * 32 + "Zebra stripes"
    assert odd[cut_at(odd) :] == "Zebra stripes"
    assert prompt_cut("a red circle") is None
    found = prompt_cut("a " * 32 + "blue star")
    assert found is not None and found.limit == "32 words"
    assert ("a " * 32 + "blue star")[found.at :] == "blue star"


def test_phrases_name_each_object_of_a_distinct_colour() -> None:
    tokenizer = TextTokenizer.build()
    phrases = Phrases.of(tokenizer, "Three small RED stars above a big blue one, on black!")
    assert [tokenizer.decode(ids) for ids in phrases.ids] == ["three small stars", "a large star"]
    red, blue = (list(world.COLORS).index(c) for c in ("red", "blue"))
    assert phrases.colors == (red, blue)
    groups = phrases.prompt_of_kinds(first_phrase=2)  # after the prompt and the empty one
    assert groups[FIRST_MASK + red] == 2 and groups[FIRST_MASK + blue] == 3
    assert groups.sum() == 5  # every other kind: the whole prompt (0)
    assert noun_phrase(ObjectSpec("heart", "orange")) == "an orange heart"
    for nothing_to_bind in (
        "a red star",
        "three red stars",
        "a red star and a red circle",
        "a circle and a blue star",
        "hello",
    ):
        assert Phrases.of(tokenizer, nothing_to_bind) is None


def test_phrases_change_only_prompts_that_have_them(backend) -> None:
    def images(prompt: str, phrases: bool) -> list[np.ndarray]:
        options = {"phrases": phrases, "temperature": 1.0, "rank": False}  # varied patches
        request_ = request(prompt=prompt, count=16, candidates=16, options=options)
        return [c.image for c in backend.generate(request_, Context())]

    for prompt, has_phrases in (
        ("a red star and a blue circle", True),
        ("three yellow hearts", False),
    ):
        on, off = images(prompt, True), images(prompt, False)
        same = all(np.array_equal(a, b) for a, b in zip(on, off, strict=True))
        assert same is not has_phrases, prompt


def test_image_tokenizer_round_trips_scenes(micro_bundle) -> None:
    image_tokens = Tokenizers.load(micro_bundle).image
    sampler = SceneSampler(3)
    for _ in range(20):
        image = render_array(sampler.realise(sampler.spec()))
        background, tokens = image_tokens.encode(image)
        assert tokens.shape == (image_tokens.n_patches,)
        again = image_tokens.decode(background, tokens)
        assert np.abs(again.astype(int) - image).mean() < 12  # 64 codes only in micro
        assert (tokens >= FIRST_MASK).any()


def test_generation_is_deterministic_ranked_and_previewed(backend) -> None:
    ctx = Context()
    first = backend.generate(request(), ctx)
    again = backend.generate(request(), Context())
    assert len(first) == 8
    assert all(np.array_equal(a.image, b.image) for a, b in zip(first, again, strict=True))
    scores = [c.score for c in first]
    assert scores == sorted(scores, reverse=True)
    assert ctx.steps[-1] == (64, 64) and len(ctx.steps) == 64
    assert len(ctx.previews) == 8 and ctx.previews[-1].shape == (64, 64 * 4, 3)
    # Other seeds draw other images (at temperature 1: the micro model is very sure of itself)
    hot = {"temperature": 1.0}
    one, other = (backend.generate(request(seed=s, options=hot), Context()) for s in (5, 105))
    assert not all(any(np.array_equal(a.image, b.image) for b in other) for a in one)


def test_unranked_keeps_sampling_order(backend) -> None:
    ranked = backend.generate(request(), Context())
    plain = backend.generate(request(options={"rank": False}), Context())
    assert {c.image.tobytes() for c in ranked} == {c.image.tobytes() for c in plain}
    assert all(c.score == 0.0 for c in plain)


def full_pass_log_likelihoods(model, ids, backgrounds, patches, options, phrases) -> torch.Tensor:
    """Each image's log-likelihood under the sampling distribution, from one full forward
    pass per prompt over the finished tokens (no KV cache): what sampling must add up."""
    prompts, prompt_of_kind = prompt_groups(ids, options, phrases)
    kind, code = split_patch_tokens(patches, model.config.n_codes)
    n, t = len(backgrounds), model.config.text_length
    x = torch.cat(
        [
            model.text_embed(torch.from_numpy(prompts)).repeat_interleave(n, 0),
            model.background_embed(backgrounds).repeat(len(prompts), 1)[:, None],
            model.embed_patches(kind[:, :-1], code[:, :-1]).repeat(len(prompts), 1, 1),
        ],
        1,
    )
    h = model.run(x, 0)[0][:, t - 1 :].view(len(prompts), n, -1, model.config.width)

    def guided(logits: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
        log_p = logits.log_softmax(-1)
        log_p = log_p[1] + options.guidance * (log_p[own, torch.arange(n)] - log_p[1])
        return log_p.log_softmax(-1)

    total = guided(model.background_head(h[:, :, 0]), torch.zeros(n, dtype=torch.long))
    total = total.gather(1, backgrounds[:, None])[:, 0]
    for p in range(patches.shape[1]):
        at = h[:, :, p + 1]
        total += guided(model.kind_head(at), torch.zeros(n, dtype=torch.long)).gather(
            1, kind[:, p, None]
        )[:, 0]
        masked = code[:, p] < model.config.n_codes
        own = torch.from_numpy(prompt_of_kind)[kind[:, p]]
        codes = guided(model.code_logits(at, kind[:, p].expand(len(prompts), -1)), own)
        total += torch.where(
            masked, codes.gather(1, code[:, p, None].clamp(max=model.config.n_codes - 1))[:, 0], 0.0
        )
    return total


def test_sampling_adds_up_each_images_log_likelihood(micro_bundle) -> None:
    """The ranking weighs in these sums: they must be the model's, under guidance and by
    phrase, with the KV cache."""
    model = load_module(ShapesTransformer, TransformerConfig, micro_bundle / TRANSFORMER)
    tokenizer = Tokenizers.load(micro_bundle).text
    prompt = "a red star and a blue circle"
    options = SamplingOptions(temperature=1.0)
    phrases = Phrases.of(tokenizer, prompt)
    ids = tokenizer.encode(prompt).ids
    with torch.inference_mode():
        backgrounds, patches, sums = sample_tokens(
            model, torch.from_numpy(ids), 6, options, ImageDraws(2, 6), phrases=phrases
        )
        expected = full_pass_log_likelihoods(model, ids, backgrounds, patches, options, phrases)
    assert (sums < 0).all() and sums.std() > 0
    assert torch.allclose(sums, expected, atol=1e-3), (sums, expected)


def test_cancel_stops_within_one_step(backend) -> None:
    ctx = Context(cancel_at=10)
    with pytest.raises(Cancelled):
        backend.generate(request(), ctx)
    assert ctx.steps[-1][0] == 10


def test_unknown_words_and_prompts_with_no_known_word(backend) -> None:
    assert backend.unknown_words("a red circle wearing a hat") == ["wearing", "hat"]
    with pytest.raises(NoKnownWords, match="none of the words"):
        backend.generate(request(prompt="bonjour le monde"), Context())


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path) -> None:
    config = get_config("micro", steps=30, checkpoint_seconds=0.0, log_every=10)
    tokenizers = stage_tokenizers(config, tmp_path / "bundle", RunLog(tmp_path / "log"))

    class Interrupt(RunLog):
        def __call__(self, message: str, **figures: object) -> None:
            super().__call__(message, **figures)
            if message == "transformer step 20":
                raise KeyboardInterrupt

    interrupted = tmp_path / "interrupted"
    (interrupted / "bundle").mkdir(parents=True)
    with pytest.raises(KeyboardInterrupt):
        stage_transformer(config, tokenizers, interrupted, Interrupt(tmp_path / "log"))
    resumed = stage_transformer(config, tokenizers, interrupted, RunLog(tmp_path / "log"))
    straight_run = tmp_path / "straight"
    (straight_run / "bundle").mkdir(parents=True)
    straight = stage_transformer(config, tokenizers, straight_run, RunLog(tmp_path / "log"))
    assert "from step 19 of 30" in (tmp_path / "log").read_text()
    for (name, a), b in zip(
        resumed.state_dict().items(), straight.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name


def test_the_transformer_takes_all_threads_from_a_step(micro_bundle, tmp_path) -> None:
    """A step, not the ranker's end: when it happens never depends on timing."""
    config = get_config("micro", steps=12, log_every=4, all_threads_from=5)
    (tmp_path / "bundle").mkdir()
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # as beside the ranker
        stage_transformer(
            config, Tokenizers.load(micro_bundle), tmp_path, RunLog(tmp_path / "log"), threads=2
        )
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    log = (tmp_path / "log").read_text()
    assert log.index("transformer step 4 ") < log.index("step 5: now on 2 threads")
    assert log.count("now on 2 threads") == 1


def test_two_threads_train_the_ranker_side_by_side_to_the_same_weights(micro_bundle, tmp_path):
    run = tmp_path / "run"
    (run / "bundle").mkdir(parents=True)
    for name in (IMAGE_TOKENIZER, TEXT_VOCAB):  # the tokenizers are done: skip refitting
        shutil.copy(micro_bundle / name, run / "bundle" / name)
    train(get_config("micro"), run, None, RunLog(run / "log.txt"), threads=2)
    log = (run / "log.txt").read_text()
    assert "ranker step 40" in log and "transformer step 120" in log
    for name in (TRANSFORMER, RANKER):  # one thread each, as the fixture's single process
        side_by_side, alone = load_file(run / "bundle" / name), load_file(micro_bundle / name)
        assert all(np.array_equal(side_by_side[k], alone[k]) for k in alone), name


def test_data_workers_replay_and_a_time_budget(micro_bundle, tmp_path) -> None:
    """The GPU configuration's path, on the CPU: scenes from two worker processes (each
    its own stream), every fresh batch replayed once, and a wall-time budget that ends
    the run and its learning-rate decay before the step count would."""
    tokenizers = Tokenizers.load(micro_bundle)
    alone = transformer_batches(tokenizers, 4, seed=3)
    parallel = transformer_batches(tokenizers, 4, seed=3, workers=2)
    first, second = next(parallel), next(parallel)  # worker 0's, then worker 1's
    assert not torch.equal(first[2], second[2])
    assert torch.equal(first[2], next(transformer_batches(tokenizers, 4, seed=3 * 1009))[2])
    assert not torch.equal(next(alone)[2], first[2])

    twice, once, first, whole = (
        Schedule(16, 2, 1.0, restarts=(8, 12)),
        Schedule(12, 2, 1.0, restarts=(8,)),
        Schedule(8, 2, 1.0),
        Schedule(16, 2, 1.0),
    )
    # a finished run goes on unchanged: each restart keeps the steps before it
    assert [twice.lr(i) for i in range(12)] == [once.lr(i) for i in range(12)]
    assert [once.lr(i) for i in range(8)] == [first.lr(i) for i in range(8)]
    assert [twice.lr(i) for i in range(12, 16)] == [whole.lr(i) for i in range(12, 16)]
    assert twice.lr(8) > twice.lr(7) and twice.lr(12) > twice.lr(11)
    assert not twice.done(12) and twice.done(16)
    assert parse_overrides(["restarts=8000,12000", "steps=16000"]) == {
        "restarts": (8000, 12000),
        "steps": 16000,
    }
    now = [100.0]  # a clock the test moves: the schedule reads no wall time of its own
    schedule = Schedule(steps=10**6, warmup=0, peak=1.0, seconds=0.5, clock=lambda: now[0])
    assert not schedule.done(1) and schedule.lr(1) == pytest.approx(1.0, abs=1e-5)
    now[0] += 0.25  # half the time: half the cosine, whatever the steps say
    assert not schedule.done(1) and schedule.lr(1) == pytest.approx(0.55)
    now[0] += 0.25
    assert schedule.done(1) and schedule.lr(1) == pytest.approx(0.1)

    config = get_config("micro", steps=10**6, replay=1, log_every=4, warmup=2, eval_every=10**9)
    run = tmp_path / "run"
    (run / "bundle").mkdir(parents=True)
    ticks = itertools.count()  # the run's clock: a tenth of a second each time it is read

    def clock() -> float:
        return next(ticks) / 10

    log = RunLog(run / "log.txt")
    stage_transformer(config, tokenizers, run, log, workers=2, minutes=0.1, clock=clock)
    log = (run / "log.txt").read_text()
    assert "with 2 data workers" in log and "transformer step 4 " in log
    *_, last = re.findall(r"transformer step (\d+) ", log)  # logged at the end, too
    assert 4 <= int(last) < 60  # the 6 s budget is 60 readings; each step reads at least one
    assert (run / "bundle" / TRANSFORMER).exists()


def test_damaged_weights_get_a_clear_error(micro_bundle, tmp_path) -> None:
    assert ShapesPipeline.load(micro_bundle).ranker is not None
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes((micro_bundle / TRANSFORMER).read_bytes()[:1000])
    with pytest.raises(BundleError, match="cannot read"):
        load_module(ShapesTransformer, TransformerConfig, broken)


def test_kv_cache_matches_a_full_forward_pass(micro_bundle) -> None:
    model = load_module(ShapesTransformer, TransformerConfig, micro_bundle / TRANSFORMER)
    c = model.config
    x = torch.randn(2, c.text_length + 5, c.width) * 0.1
    full, _ = model.run(x, 0)
    prefix, past = model.run(x[:, : c.text_length], 0)
    steps = [prefix[:, -1:]]
    for i in range(c.text_length, c.text_length + 5):
        h, past = model.run(x[:, i : i + 1], i, past)
        steps.append(h)
    assert torch.allclose(torch.cat(steps, 1)[:, 1:], full[:, c.text_length :], atol=1e-5)
