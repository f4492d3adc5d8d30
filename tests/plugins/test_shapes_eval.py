"""`studio eval`: the prompt set, the report, and a run through the real engine."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from shapes_backend import world
from shapes_backend.parser import parse_prompt
from shapes_lab.evaluate import DEFAULT_PROMPTS, EvalPrompt, evaluate_images, load_prompts
from shapes_lab.judge import Judge
from shapes_lab.render import render
from shapes_lab.sampler import SceneSampler
from studio.api import EXIT_OK, EXIT_USAGE
from studio.cli import main


@pytest.fixture(scope="module")
def judge() -> Judge:
    return Judge.load()


def test_the_shipped_prompt_set() -> None:
    prompts = load_prompts(DEFAULT_PROMPTS)
    seen = Counter(p.kind for p in prompts if p.split == "seen")
    assert set(seen) == set(world.KINDS) and min(seen.values()) >= 100
    held_out = [p for p in prompts if p.split == "held_out"]
    assert len(held_out) >= 100
    for p in prompts:
        spec = parse_prompt(p.prompt)
        assert spec.kind == p.kind, p
        coloured = [(o.color, o.shape) for o in spec.objects if o.color]
        if p.split == "held_out":
            assert coloured and all(pair in world.HELD_OUT for pair in coloured), p
        else:
            assert not any(pair in world.HELD_OUT for pair in coloured), p
    assert len({p.prompt.lower() for p in prompts}) == len(prompts)
    assert DEFAULT_PROMPTS.read_text().startswith("# Shapes evaluation prompts, version 1")


def test_prompt_files_take_plain_lines_and_report_bad_ones(tmp_path) -> None:
    path = tmp_path / "mine.txt"
    path.write_text(
        "# mine\nthree yellow hearts\nrelation\tseen\ta star above a heart\n\nan orange heart\n"
    )
    assert load_prompts(path) == [
        EvalPrompt("count", "seen", "three yellow hearts"),
        EvalPrompt("relation", "seen", "a star above a heart"),
        EvalPrompt("single", "held_out", "an orange heart"),
    ]
    path.write_text("single\tseen\n")
    with pytest.raises(ValueError, match=r"mine\.txt:1"):
        load_prompts(path)


def test_scores_follow_the_judge(judge) -> None:
    prompts = [
        EvalPrompt("single", "seen", "a red circle"),
        EvalPrompt("count", "seen", "two blue stars"),
        EvalPrompt("single", "held_out", "a purple star"),
    ]

    def faithful(prompt: str, seed: int, ranked: bool):
        sampler = SceneSampler(seed, pairs="any")
        return [render(sampler.realise(parse_prompt(prompt))) for _ in range(2)]

    def wrong(prompt: str, seed: int, ranked: bool):
        return faithful("a green square" if ranked else prompt, seed, ranked)

    check = lambda image, spec: judge.check(image, spec).passed  # noqa: E731
    report = evaluate_images(prompts, faithful, check)
    data = report.to_json()
    assert data["overall"] == {"score": 1.0, "unranked_score": 1.0}
    assert data["count"]["images"] == 2 and data["held_out"]["single"]["score"] == 1.0
    mixed = evaluate_images(prompts, wrong, check).to_json()
    assert mixed["overall"] == {"score": 0.0, "unranked_score": 1.0}
    assert "ranked" in report.table()


def test_studio_eval_runs_prompts_through_the_engine(install_plugins, tmp_path, capsys) -> None:
    install_plugins({"oracle": "oracle_backend:OracleBackend"})
    path = tmp_path / "prompts.tsv"
    path.write_text(
        "place\tseen\ta green triangle in the top left corner\n"
        "relation\tseen\ta pink diamond to the left of an orange star\n"
        "colors\theld_out\ta purple star and a cyan triangle\n"
    )
    code = main(
        [
            "eval",
            "--prompts",
            str(path),
            "--backend",
            "oracle",
            "--count",
            "2",
            "--candidates",
            "4",
            "--json",
        ]
    )
    assert code == EXIT_OK
    data = json.loads(capsys.readouterr().out)
    assert data["overall"]["score"] == 1.0
    assert data["place"]["images"] == 2 and data["relation"]["score"] == 1.0
    assert data["held_out"]["colors"]["score"] == 1.0
    assert data["settings"]["candidates"] == 4
    assert main(["eval", "--prompts", str(tmp_path / "none.tsv")]) == EXIT_USAGE


def test_studio_eval_ground_truth(capsys) -> None:
    assert main(["eval", "--ground-truth", "--per-kind", "40", "--json"]) == EXIT_OK
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"overall", *world.KINDS}
    assert all(data[kind]["score"] >= 0.95 for kind in world.KINDS)
