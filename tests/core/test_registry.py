"""The plugin registry: discovery without import, lazy import, failures reported."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from studio.core.registry import BackendStatus, BackendUnavailable, PluginRegistry


def test_discovery_imports_no_plugin_code(install_plugins) -> None:
    install_plugins()
    registry = PluginRegistry()
    assert {"fake", "broken", "exits", "notabackend"} <= set(registry.ids())
    record = registry.record("fake")
    assert record.status is BackendStatus.DISCOVERED
    assert record.target == "fake_backend:FakeBackend"
    assert record.distribution == "studio-test-plugins"
    assert "fake_backend" not in sys.modules


def test_backend_is_imported_on_first_use(install_plugins) -> None:
    install_plugins()
    registry = PluginRegistry()
    backend = registry.get("fake")
    assert "fake_backend" in sys.modules
    assert registry.get("fake") is backend  # one instance
    assert registry.record("fake").status is BackendStatus.READY


@pytest.mark.parametrize(
    ("backend_id", "error"),
    [
        ("broken", "this plugin needs a library"),
        ("exits", "it exited (code 3)"),
        ("notabackend", "not_a_backend:NotABackend is not a studio Backend"),
    ],
)
def test_failing_plugin_is_reported_and_others_work(install_plugins, backend_id, error) -> None:
    install_plugins()
    registry = PluginRegistry()
    with pytest.raises(BackendUnavailable, match=backend_id):
        registry.get(backend_id)
    record = registry.record(backend_id)
    assert record.status is BackendStatus.FAILED
    assert record.error.startswith(error)
    assert "Traceback" in record.traceback
    with pytest.raises(BackendUnavailable, match="failed"):  # stays failed, no re-import
        registry.get(backend_id)
    assert registry.get("fake").models()[0].ref == "tiny"


def test_unknown_backend_names_the_installed_ones(install_plugins) -> None:
    install_plugins({"fake": "fake_backend:FakeBackend"})
    with pytest.raises(BackendUnavailable, match=r"unknown backend 'nope' \(installed: .*fake"):
        PluginRegistry().get("nope")


def test_no_plugins_installed() -> None:
    registry = PluginRegistry(declared=[])
    assert registry.ids() == []
    with pytest.raises(BackendUnavailable, match="none is installed"):
        registry.get("anything")


BACKEND = """from studio.api import Backend, Capabilities


class Plugged(Backend):
    def capabilities(self):
        return Capabilities()

    def models(self):
        return []

    def load(self, model):
        pass

    def unload(self):
        pass

    def generate(self, request, ctx):
        return []
"""


PREFIX = "studio_test_"  # the packages these tests write, forgotten after each test


def write_plugin(site: Path, package: str, manifest: str, backend: str = BACKEND) -> None:
    """A plugin package in `site` (where `install_plugins` puts its distribution): a
    manifest and a backend module."""
    assert package.startswith(PREFIX)
    folder = site / package
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text("")
    (folder / "studio-plugin.toml").write_text(manifest)
    (folder / "backend.py").write_text(backend)


@pytest.fixture
def forget_plugins() -> Iterator[None]:
    yield
    for name in [m for m in sys.modules if m.startswith(PREFIX)]:
        del sys.modules[name]


def test_manifest_formats_are_read_without_importing_the_backend(
    install_plugins, forget_plugins, tmp_path
) -> None:
    manifest = '[backends.lazy]\nformats = ["onnx", "safetensors"]\n'
    write_plugin(tmp_path / "site", "studio_test_lazy", manifest, 'raise RuntimeError("ran")\n')
    (tmp_path / "site" / "studio_test_lazy" / "__init__.py").write_text('raise RuntimeError("ran")')
    install_plugins({"lazy": "studio_test_lazy.backend:Plugged"})
    record = PluginRegistry().record("lazy")
    assert record.formats == ("onnx", "safetensors")
    assert not [m for m in sys.modules if m.startswith("studio_test_lazy")]  # not even __init__
    assert record.status is BackendStatus.DISCOVERED


@pytest.mark.parametrize(
    "manifest",
    [
        "[backends.lazy\nformats = ['onnx']\n",  # not TOML
        "[backends.lazy]\nformats = 'onnx'\n",  # not a list
        "[backends.other]\nformats = ['onnx']\n",  # not this backend's
        "formats = ['onnx']\n",  # no backends table
        "",  # empty
    ],
)
def test_a_broken_manifest_means_no_formats(
    install_plugins, forget_plugins, tmp_path, manifest
) -> None:
    write_plugin(tmp_path / "site", "studio_test_broken", manifest)
    install_plugins({"lazy": "studio_test_broken.backend:Plugged"})
    assert PluginRegistry().record("lazy").formats == ()
    assert "studio_test_broken.backend" not in sys.modules


def test_no_manifest_means_no_formats(install_plugins) -> None:
    install_plugins({"fake": "fake_backend:FakeBackend"})  # a plain module, not a package
    assert PluginRegistry().record("fake").formats == ()
    assert "fake_backend" not in sys.modules


def test_the_core_picks_the_backend_for_a_model_by_manifest(
    install_plugins, forget_plugins, tmp_path
) -> None:
    from importlib.metadata import entry_points

    import numpy as np
    from safetensors.numpy import save_file

    from studio.core.app import Core
    from studio.core.model_files import ModelFileError
    from studio.core.registry import GROUP

    site = tmp_path / "site"
    write_plugin(
        site,
        "studio_test_graphs",
        '[backends.graphs]\nformats = ["onnx"]\n',
        'raise RuntimeError("the graphs backend was imported")\n',
    )
    write_plugin(site, "studio_test_tensors", '[backends.tensors]\nformats = ["safetensors"]\n')
    install_plugins(
        {
            "graphs": "studio_test_graphs.backend:Plugged",
            "tensors": "studio_test_tensors.backend:Plugged",
        }
    )
    model = tmp_path / "weights.safetensors"
    save_file({"layer.weight": np.zeros((2, 2), np.float32)}, str(model))
    folder = tmp_path / "diffusers-like"
    folder.mkdir()
    (folder / "model_index.json").write_text("{}")
    with Core.open(tmp_path / "data") as core:
        ours = [p for p in entry_points(group=GROUP) if p.name in ("graphs", "tensors")]
        core.registry = PluginRegistry(ours)  # these two only, whatever else is installed
        # only the backend that loads the format is imported, to ask whether it can use
        # the file (`Backend.examine`): the CLI runs it next anyway
        assert core.backend_for_model(str(model)) == "tensors"
        assert "studio_test_tensors.backend" in sys.modules
        assert "studio_test_graphs.backend" not in sys.modules
        with pytest.raises(ModelFileError, match="no installed backend runs diffusers models"):
            core.backend_for_model(str(folder))
