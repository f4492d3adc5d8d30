"""Prompt styles: A1111's styles.csv read and written as A1111 does, the `{prompt}` rules,
several styles in order, the user's file and its starter set, import and export, the
metadata field, and the CLI's --style and `studio styles`, with the fake backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.api import EXIT_OK, EXIT_USAGE
from studio.cli import main
from studio.core.metadata import ImageMetadata, parse_parameters, read_metadata
from studio.core.request import GenerationRequest
from studio.core.styles import (
    Style,
    StyleError,
    StyleLibrary,
    apply_styles,
    format_csv,
    merge,
    parse_csv,
    read_styles,
    starter_styles_bytes,
)

# As A1111 writes it (csv.DictWriter, utf-8-sig, excel dialect): BOM, CRLF, quotes only
# where a field has a comma, a quote or a line break, a quote doubled inside.
A1111_FILE = (
    "\ufeffname,prompt,negative_prompt\r\n"
    'Cinematic,"cinematic still of {prompt}, shallow depth of field","cartoon, ""anime"""\r\n'
    "Plain,just words,\r\n"
    'Two lines,"first\nsecond",\r\n'
    "Empty,,\r\n"
).encode()


def test_a1111_file_round_trips_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "styles.csv"
    path.write_bytes(A1111_FILE)
    styles = read_styles(path)
    assert [s.name for s in styles] == ["Cinematic", "Plain", "Two lines", "Empty"]
    assert styles[0].prompt == "cinematic still of {prompt}, shallow depth of field"
    assert styles[0].negative_prompt == 'cartoon, "anime"'
    assert styles[2].prompt == "first\nsecond"
    assert format_csv(styles) == A1111_FILE


def test_reading_is_as_lenient_as_a1111s() -> None:
    text = 'name, prompt, negative_prompt\n# a comment,,\nA, "x, y", z\nA, later, \n'
    # spaces after commas skipped, "#" rows are no styles, a later name replaces in place
    assert parse_csv(text) == [Style("A", "later", "", "a comment")]
    assert parse_csv("name,text\nOld,words\n") == [Style("Old", "words")]  # the old format
    assert parse_csv("") == []
    with pytest.raises(StyleError, match="name"):
        parse_csv("prompt,negative_prompt\nx,y\n")


def test_group_rows_mark_groups_and_are_written_back() -> None:
    styles = [Style("Loose"), Style("Japandi", "j", "", "Interior"), Style("Ink", "i", "", "Art")]
    data = format_csv(reversed(styles))
    assert data.decode("utf-8-sig").splitlines() == [
        "name,prompt,negative_prompt",
        "Loose,,",  # ungrouped first, before any group row
        "# Art,,",
        "Ink,i,",
        "# Interior,,",
        "Japandi,j,",
    ]
    assert {s.name: s.group for s in parse_csv(data.decode("utf-8-sig"))} == {
        "Loose": "",
        "Ink": "Art",
        "Japandi": "Interior",
    }


@pytest.mark.parametrize(
    ("template", "text", "expected"),
    [
        ("watercolour of {prompt}, soft", "a cat", "watercolour of a cat, soft"),
        ("{prompt} and {prompt}", "x", "x and x"),
        ("japandi interior", "a sofa", "a sofa, japandi interior"),
        ("japandi interior ", "  a sofa ", "a sofa, japandi interior"),
        ("japandi interior", "", "japandi interior"),
        ("", "a sofa", "a sofa"),
    ],
)
def test_prompt_placeholder_rule(template: str, text: str, expected: str) -> None:
    assert merge(template, text) == expected


def test_several_styles_apply_in_order_to_both_prompts() -> None:
    japandi = Style("Japandi", "japandi interior", "clutter")
    ink = Style("Ink", "ink sketch of {prompt}", "photo, {prompt}")
    assert apply_styles([japandi, ink], "a sofa", "blur") == (
        "ink sketch of a sofa, japandi interior",
        "photo, blur, clutter",
    )
    assert apply_styles([ink, japandi], "a sofa") == (
        "ink sketch of a sofa, japandi interior",
        "photo,, clutter",  # as A1111 does: the template takes an empty negative as is
    )


def test_starter_set_is_shipped_and_copied_on_first_use(tmp_path: Path) -> None:
    library = StyleLibrary.in_folder(tmp_path)
    styles = library.styles()
    assert library.path.read_bytes() == starter_styles_bytes()
    groups = {s.name: s.group for s in styles}
    interior = ["Scandinavian", "Japandi", "Mid-century modern", "Industrial", "Bohemian"]
    interior += ["Minimalist", "Art Deco", "Coastal", "Farmhouse", "Traditional", "Contemporary"]
    art = ["Watercolour", "Ink sketch", "Oil painting", "Isometric", "Flat illustration"]
    rooms = ["Living room", "Bedroom", "Kitchen", "Bathroom", "Office", "Dining room"]
    assert all(groups[name] == "Interior" for name in interior)
    assert all(groups[name] == "Art" for name in [*art, "Photograph"])
    assert all(groups[name] == "Room" for name in rooms)
    assert format_csv(styles) == starter_styles_bytes()  # the starter is in A1111's format
    library.save([Style("Mine", "m")])  # the user's edits are kept, never overwritten
    assert [s.name for s in library.styles()] == ["Mine"]


def test_find_by_name_in_order_and_unknown_names_listed(tmp_path: Path) -> None:
    library = StyleLibrary.in_folder(tmp_path)
    assert [s.name for s in library.find(["watercolour", "Japandi"])] == [
        "Watercolour",
        "Japandi",
    ]
    with pytest.raises(StyleError, match=r"no style 'Nope'.*Japandi"):
        library.find(["Japandi", "Nope"])


def test_import_merges_by_name_and_export_writes_a1111s_format(tmp_path: Path) -> None:
    library = StyleLibrary.in_folder(tmp_path / "data")
    incoming = tmp_path / "theirs.csv"
    incoming.write_bytes(A1111_FILE.replace(b"Plain,just", b"Japandi,new"))
    added, replaced = library.import_file(incoming)
    assert added == ["Cinematic", "Two lines", "Empty"]
    assert replaced == ["Japandi"]
    styles = {s.name: s for s in library.styles()}
    assert styles["Japandi"] == Style("Japandi", "new words", "", "Interior")  # keeps its group
    assert styles["Cinematic"].group == ""
    assert len(styles) == 23 + 3
    out = tmp_path / "out" / "exported.csv"
    assert library.export(out) == 26
    assert out.read_bytes() == library.path.read_bytes()
    with pytest.raises(StyleError, match="cannot read"):
        library.import_file(tmp_path / "missing.csv")


def test_metadata_names_the_styles_before_the_model() -> None:
    request = GenerationRequest(
        "ink sketch of a sofa, japandi interior",
        model="m",
        options={"styles": ["Japandi", "Ink sketch"]},
    )
    metadata = ImageMetadata(request, sampler="Euler", model_hash="abcdef0123")
    keys = [key for key, _ in metadata.parameter_items()]
    assert keys[0] == "Steps"
    assert keys.index("Styles") < keys.index("Model hash") < keys.index("Model")
    line = metadata.parameters_text().splitlines()[-1]
    assert 'Styles: "Japandi, Ink sketch"' in line
    parsed = parse_parameters(metadata.parameters_text())
    assert parsed.extra["Styles"] == "Japandi, Ink sketch"
    assert parsed.model == "m"
    assert "Styles" not in dict(ImageMetadata(GenerationRequest("x")).parameter_items())


# -- the CLI ------------------------------------------------------------------------------


def cli(capsys, *args: str) -> tuple[int, dict | str]:
    code = main([*args, "--json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == EXIT_OK else err)


GEN = ("generate", "--backend", "fake", "--size", "16x16", "--count", "1")


def test_cli_style_makes_the_final_prompt_and_records_the_names(install_plugins, capsys):
    install_plugins()
    code, out = cli(capsys, *GEN, "a sofa", "--negative", "blur", "--style", "Japandi")
    assert code == EXIT_OK
    request = out["request"]
    assert request["prompt"] == (
        "a sofa, japandi interior, light oak, linen, muted earth tones, low furniture, "
        "calm and minimal"
    )
    assert request["negative_prompt"] == "blur, clutter, distorted furniture, warped lines"
    code, out = cli(capsys, *GEN, "a sofa", "--style", "living room", "--style", "Watercolour")
    assert code == EXIT_OK
    assert out["request"]["prompt"] == (
        "watercolour painting of a sofa, living room, soft washes, paper texture"
    )
    assert out["request"]["options"]["styles"] == ["Living room", "Watercolour"]
    parsed = read_metadata(out["images"][0]["path"])
    assert parsed.studio.request.options["styles"] == ["Living room", "Watercolour"]
    assert 'Styles: "Living room, Watercolour"' in parsed.raw["parameters"]


def test_cli_unknown_style_is_a_usage_error_listing_the_names(install_plugins, capsys):
    install_plugins()
    code, err = cli(capsys, *GEN, "a sofa", "--style", "Japandi", "--style", "Gothic")
    assert code == EXIT_USAGE
    assert "no style 'Gothic'" in err
    assert "Japandi" in err and "Living room" in err


def test_cli_styles_list_import_export(capsys, tmp_path: Path) -> None:
    code, out = cli(capsys, "styles", "list")
    assert code == EXIT_OK
    assert {"name": "Bedroom", "group": "Room", "prompt": "bedroom", "negative_prompt": ""} in (
        out["styles"]
    )
    theirs = tmp_path / "theirs.csv"
    theirs.write_bytes(A1111_FILE)
    code, out = cli(capsys, "styles", "import", str(theirs))
    assert code == EXIT_OK
    assert out["added"] == ["Cinematic", "Plain", "Two lines", "Empty"]
    exported = tmp_path / "all.csv"
    code, out = cli(capsys, "styles", "export", str(exported))
    assert code == EXIT_OK
    assert out["count"] == 27
    assert [s.name for s in read_styles(exported)][:2] == ["Cinematic", "Plain"]
    code, err = cli(capsys, "styles", "import", str(tmp_path / "nope.csv"))
    assert code != EXIT_OK
    assert "cannot read" in err


def test_cli_style_on_a_recorded_request_adds_to_its_styles(install_plugins, capsys) -> None:
    install_plugins()
    code, made = cli(capsys, *GEN, "a sofa", "--style", "Kitchen")
    assert code == EXIT_OK
    code, again = cli(
        capsys, "generate", "--from", made["images"][0]["path"], "--style", "Ink sketch"
    )
    assert code == EXIT_OK
    assert again["request"]["prompt"] == (
        "ink sketch of a sofa, kitchen, fine pen lines, cross-hatching, white paper"
    )
    assert again["request"]["options"]["styles"] == ["Kitchen", "Ink sketch"]
