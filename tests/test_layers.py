"""The plugin door: plugins import only `studio.api` from Studio, and the core knows file
formats, not model architectures. (import-linter checks the installed packages' layers
too; this reads the source, so a new plugin folder is covered the day it appears.)"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_SOURCES = sorted(
    [*(ROOT / "plugins").rglob("*.py"), *(ROOT / "docs" / "example-plugin").rglob("*.py")]
)
# Names only a Stable-Diffusion checkpoint or pipeline uses: they belong to its plugin.
SD_KNOWLEDGE = (
    "model.diffusion_model",
    "first_stage_model",
    "cond_stage_model",
    "conditioner.embedders",
    "input_blocks",
    "output_blocks",
    "text_encoder_2",
    "vae_decoder",
    "StableDiffusion",
    "cross_attention_dim",
    "SDXL",
    "SD 1.x",
)


def studio_imports(source: Path) -> list[str]:
    """Every module of `studio` that a file imports, at any depth of its code."""
    found = []
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
    return [name for name in found if name == "studio" or name.startswith("studio.")]


def test_there_are_plugins_to_check() -> None:
    assert len(PLUGIN_SOURCES) > 50


@pytest.mark.parametrize("source", PLUGIN_SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_plugins_import_only_the_api(source: Path) -> None:
    outside = [m for m in studio_imports(source) if m != "studio.api"]
    assert not outside, f"{source.relative_to(ROOT)} imports {outside}: use studio.api"


def test_the_scan_sees_imports_inside_functions(tmp_path: Path) -> None:
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("def f():\n    from studio.core.files import atomic_write_bytes\n")
    assert studio_imports(sneaky) == ["studio.core.files"]


def test_the_core_knows_no_model_architecture() -> None:
    for source in sorted((ROOT / "studio").rglob("*.py")):
        text = source.read_text(encoding="utf-8")
        known = [name for name in SD_KNOWLEDGE if name in text]
        assert not known, f"{source.relative_to(ROOT)} knows {known}: the SD plugin's business"
