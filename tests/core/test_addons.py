"""LoRAs and ControlNets in the core: the prompt's <lora:…> tags, the request fields, the
control maps the engine makes and stores, metadata as A1111 writes it, history keeping
the control pictures, and the CLI's --lora / --control-* flags, with the fake backend."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps
from safetensors.numpy import save_file

from studio.api import EXIT_OK, EXIT_USAGE, Capabilities
from studio.cli import main
from studio.core import controls
from studio.core.addons import Control, Lora, split_loras
from studio.core.app import Core
from studio.core.history import HistoryStore
from studio.core.inputs import InputError, InputStore, pixel_digest
from studio.core.jobs import JobState
from studio.core.metadata import ImageMetadata, parse_parameters, read_metadata
from studio.core.request import GenerationRequest, RequestError


def picture(seed: int = 0, size: tuple[int, int] = (16, 16)) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), np.uint8)
    return Image.fromarray(pixels)


# -- LoRAs in the prompt and on the request -----------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "text", "loras"),
    [
        ("a cat <lora:ink:0.8>", "a cat", [("ink", 0.8)]),
        ("<lora:ink> a cat, <lora:Film Grain:-0.5>, night", "a cat, night",
         [("ink", 1.0), ("Film Grain", -0.5)]),
        ("a cat <LORA:ink:0.6:0.2>", "a cat", [("ink", 0.6)]),  # A1111's text-encoder weight
        ("a cat <lora:ink:lots>", "a cat", [("ink", 1.0)]),
        ("a cat <lora::1> <hypernet:x:1>", "a cat <lora::1> <hypernet:x:1>", []),
    ],
)  # fmt: skip
def test_lora_tags_leave_the_text_the_encoder_sees(prompt, text, loras) -> None:
    found_text, found = split_loras(prompt)
    assert found_text == text
    assert [(lora.model, lora.weight) for lora in found] == loras


def test_a_request_lists_the_prompts_loras_then_its_own_and_records_the_prompt_as_written():
    request = GenerationRequest("a cat <lora:ink:0.5>", loras=(Lora("grain", 0.3),), seed=1)
    assert request.split_loras() == ("a cat", (Lora("ink", 0.5), Lora("grain", 0.3)))
    assert request.prompt == "a cat <lora:ink:0.5>"
    again = GenerationRequest.from_dict(json.loads(request.to_json()))
    assert again == request


@pytest.mark.parametrize(
    ("text", "model", "weight"),
    [
        ("ink", "ink", 1.0),
        ("ink:0.7", "ink", 0.7),
        ("/loras/ink.safetensors:-1", "/loras/ink.safetensors", -1.0),
        ("C:\\loras\\ink.safetensors", "C:\\loras\\ink.safetensors", 1.0),
        ("C:\\loras\\ink.safetensors:0.5", "C:\\loras\\ink.safetensors", 0.5),
    ],
)
def test_lora_flag_values(text, model, weight) -> None:
    assert Lora.parse(text) == Lora(model, weight)


def test_bad_add_ons_are_refused_with_the_reason(tmp_path) -> None:
    image = InputStore(tmp_path).add(picture())
    with pytest.raises(RequestError, match="weight must be from -10 to 10"):
        GenerationRequest("x", loras=(Lora("ink", float("nan")),))
    with pytest.raises(RequestError, match="start < end"):
        GenerationRequest("x", controls=(Control("cn", image, start=0.6, end=0.4),))
    with pytest.raises(RequestError, match="weight must be from 0 to 2"):
        GenerationRequest("x", controls=(Control("cn", image, weight=3),))
    with pytest.raises(RequestError, match="at most 4 ControlNets"):
        GenerationRequest("x", controls=(Control("cn", image),) * 5)


def test_a_backend_without_add_ons_refuses_them_before_loading(tmp_path) -> None:
    image = InputStore(tmp_path).add(picture())
    plain = Capabilities(max_size=256, max_steps=10)
    assert "takes no LoRA" in "; ".join(plain.problems(GenerationRequest("a <lora:ink:1>")))
    request = GenerationRequest("a", controls=(Control("cn", image),) * 2)
    assert "takes no ControlNet" in "; ".join(plain.problems(request))
    one = Capabilities(max_size=256, max_steps=10, controls=1)
    assert "at most 1 ControlNets" in "; ".join(one.problems(request))


def test_control_pixels_travel_with_a_pickled_request(tmp_path) -> None:
    image = InputStore(tmp_path).add(picture(3))
    request = GenerationRequest("a", controls=(Control("cn", image, "invert", 0.5, 0.1, 0.9),))
    sent = pickle.loads(pickle.dumps(request))
    assert sent == request and sent.controls[0].image.attached
    assert np.array_equal(np.asarray(sent.controls[0].image.open()), np.asarray(picture(3)))


# -- control maps -------------------------------------------------------------------------


def test_maps_are_made_by_the_named_preprocessor_and_stored(tmp_path) -> None:
    store = InputStore(tmp_path)
    image = store.add(picture(4))
    as_given = controls.prepare(Control("cn", image), store)
    assert as_given.map == image
    inverted = controls.prepare(Control("cn", image, "invert"), store)
    expected = ImageOps.invert(picture(4))
    assert inverted.map is not None and inverted.map.digest == pixel_digest(expected)
    assert store.has(inverted.map.digest)
    assert controls.names()[:2] == ["none", "invert"]
    with pytest.raises(InputError, match="no control preprocessor 'depth'"):
        controls.prepare(Control("cn", image, "depth"), store)


# -- metadata -----------------------------------------------------------------------------


def test_metadata_writes_lora_hashes_and_control_units_as_a1111_does(tmp_path) -> None:
    image = InputStore(tmp_path).add(picture())
    control = Control("room-canny", image, "canny", 0.8, 0.0, 0.6, settings={"low": 50})
    request = GenerationRequest(
        "a room <lora:ink:0.5>", loras=(Lora("/l/grain.safetensors", 1.0),), controls=(control,)
    )
    addons = {
        "ink": ("ink", "0123456789ab"),
        "/l/grain.safetensors": ("grain", "ba9876543210"),
        "room-canny": ("control_canny", "abcdef0123"),
    }
    meta = ImageMetadata(request, addons=addons)
    text = meta.parameters_text()
    assert 'Lora hashes: "ink: 0123456789ab, grain: ba9876543210"' in text
    unit = (
        '"Module: canny, Model: control_canny [abcdef0123], Weight: 0.8, Threshold LOW: 50, '
        'Guidance Start: 0, Guidance End: 0.6"'
    )
    assert f"ControlNet 0: {unit}" in text
    parsed = parse_parameters(text)
    assert parsed.extra["Lora hashes"] == "ink: 0123456789ab, grain: ba9876543210"
    back = ImageMetadata.from_json(meta.to_json())
    assert back.addons == addons and back.request == request


# -- the engine and history ---------------------------------------------------------------


@pytest.fixture
def core(install_plugins, tmp_path) -> Core:
    install_plugins()
    with Core.open(tmp_path / "data") as core:
        yield core


def run(core: Core, request: GenerationRequest):
    job = core.engine.submit(request)
    assert job.wait(30) and job.state == JobState.DONE, job.error
    return job.results


def test_the_engine_makes_the_map_the_backend_gets_and_history_keeps_it(core) -> None:
    image = core.add_input(picture(5))
    control = Control("cn", image, "invert")
    request = core.request("a", backend="fake", width=16, height=16, count=1, seed=2)
    (entry,) = run(core, request.replace(controls=(control,)))
    made = entry.metadata.request.controls[0]
    expected = ImageOps.invert(picture(5))
    assert made.map is not None and made.map.digest == pixel_digest(expected)
    # the fake backend draws the map in: it got the inverted picture
    assert (np.asarray(Image.open(entry.path)) <= np.asarray(expected)).all()
    store = core.history.inputs
    assert store.has(made.map.digest) and store.has(image.digest)
    assert core.history.remove_unused_inputs(older_than=0) == 0  # in use
    core.history.delete([entry.id])
    assert not store.has(made.map.digest) and not store.has(image.digest)


def test_history_v4_keeps_control_pictures_across_a_reopen(tmp_path) -> None:
    with HistoryStore(tmp_path) as history:
        image = history.inputs.add(picture(6))
        request = GenerationRequest("a", controls=(Control("cn", image, map=image),), seed=1)
        (entry,) = history.save([(picture(7), ImageMetadata(request))], job_key="j")
    with HistoryStore(tmp_path) as history:
        assert history.remove_unused_inputs(older_than=0) == 0
        history.delete([entry.id])
        assert not history.inputs.has(image.digest)


# -- the CLI ------------------------------------------------------------------------------


def cli(capsys, *args: str) -> tuple[int, dict | str]:
    code = main([*args, "--json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == EXIT_OK else err)


GEN = ("generate", "--backend", "fake", "--size", "16x16", "--count", "1")


def lora_file(path: Path) -> Path:
    rng = np.random.default_rng(0)
    save_file(
        {
            "lora_unet_mid_block_attentions_0_proj_in.lora_down.weight": rng.random((4, 8)),
            "lora_unet_mid_block_attentions_0_proj_in.lora_up.weight": rng.random((8, 4)),
        },
        str(path),
    )
    return path


def test_cli_loras_and_controls_round_trip_through_info_and_from(
    install_plugins, capsys, tmp_path
) -> None:
    install_plugins()
    lora = lora_file(tmp_path / "ink.safetensors")
    assert main(["models", "add", str(lora)]) == EXIT_OK
    capsys.readouterr()
    source = tmp_path / "room.png"
    picture(8).save(source)
    code, made = cli(
        capsys, *GEN, "a room <lora:ink:0.5>", "--lora", f"{lora}:0.25",
        "--control-model", "cn", "--control-image", str(source),
        "--control-preprocess", "invert", "--control-weight", "0.7", "--control-end", "0.5",
    )  # fmt: skip
    assert code == EXIT_OK, made
    assert made["request"]["loras"] == [{"model": str(lora), "weight": 0.25}]
    (control,) = made["request"]["controls"]
    assert (control["preprocess"], control["weight"], control["end"]) == ("invert", 0.7, 0.5)
    path = made["images"][0]["path"]
    found = read_metadata(Path(path))
    digest = found.extra["Lora hashes"].split(", ")[0].split(": ")[1]
    assert len(digest) == 12 and found.extra["Lora hashes"].startswith("ink: ")
    assert "Module: invert, Model: cn, Weight: 0.7" in found.extra["ControlNet 0"]
    code, shown = cli(capsys, "history", "show", str(made["images"][0]["id"]))
    (stored,) = shown["controls"]
    assert stored["model"] == "cn" and Path(stored["file"]).is_file()
    code, info = cli(capsys, "info", path)
    assert info["extra"]["Lora hashes"] == found.extra["Lora hashes"]
    code, again = cli(capsys, "generate", "--from", path)
    assert code == EXIT_OK and again["request"]["controls"] == made["request"]["controls"]
    assert again["request"]["loras"] == made["request"]["loras"]
    same = np.asarray(Image.open(again["images"][0]["path"]))
    assert np.array_equal(same, np.asarray(Image.open(path)))


def test_cli_control_flags_must_pair_up(install_plugins, capsys, tmp_path) -> None:
    install_plugins()
    source = tmp_path / "room.png"
    picture(9).save(source)
    code, err = cli(capsys, *GEN, "a", "--control-model", "cn")
    assert code == EXIT_USAGE and "one --control-image for each --control-model" in err
    two = ("--control-model", "a", "--control-image", str(source)) * 2
    code, err = cli(
        capsys,
        *GEN,
        "a",
        *two,
        "--control-weight",
        "1",
        "--control-weight",
        "1",
        "--control-weight",
        "1",
    )
    assert code == EXIT_USAGE and "given 3 times for 2 ControlNets" in err
    code, err = cli(capsys, *GEN, "a", *two[:4], "--control-preprocess", "depth")
    assert code == EXIT_USAGE and "no control preprocessor 'depth'" in err
    code, err = cli(capsys, *GEN, "a", *two[:4], "--control-preprocess", "canny",
                    "--canny-thresholds", "200,100")  # fmt: skip
    assert code == EXIT_USAGE and "0 <= LOW <= HIGH <= 255" in err


def test_a_library_name_is_found_even_when_the_current_folder_has_that_name(
    tmp_path, monkeypatch
) -> None:
    from studio.core.models import ModelLibrary

    library_folder = tmp_path / "models"
    library_folder.mkdir()
    lora = lora_file(library_folder / "bench.safetensors")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bench").mkdir()  # a folder of the same name, not a model
    models = ModelLibrary([library_folder], [], tmp_path / "hashes.json")
    assert models.find("bench").path == lora
    assert not (tmp_path / "hashes.json").exists()  # found by name: nothing hashed
    with pytest.raises(Exception, match="is a folder but not a model"):
        models.find("./bench")
