"""The plugin registry: discovery without import, lazy import, failures reported."""

from __future__ import annotations

import sys

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
        ("broken", "ImportError: this plugin needs a library"),
        ("exits", "SystemExit: 3"),
        ("notabackend", "TypeError: not_a_backend:NotABackend is not a studio Backend"),
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


class Backend_(Backend):
    def capabilities(self):
        return Capabilities()

    def models(self):
        return []

    def load(self, model):
        pass

    def generate(self, request, ctx):
        return []
"""


@pytest.fixture
def write_plugin(tmp_path):
    """Write a plugin package (a manifest and a backend module) where `install_plugins`
    puts its distribution; its modules are forgotten afterwards."""
    written: list[str] = []

    def write(package: str, manifest: str, backend: str = BACKEND) -> None:
        folder = tmp_path / "site" / package
        folder.mkdir(parents=True)
        (folder / "__init__.py").write_text("")
        (folder / "studio-plugin.toml").write_text(manifest)
        (folder / "backend.py").write_text(backend)
        written.append(package)

    yield write
    for name in [m for m in sys.modules if m.partition(".")[0] in written]:
        del sys.modules[name]


def test_manifest_formats_are_read_without_importing_the_backend(install_plugins,
                                                                 write_plugin) -> None:  # fmt: skip
    write_plugin("manifest_only", '[backends.lazy]\nformats = ["onnx", "safetensors"]\n',
                 'raise RuntimeError("imported")\n')  # fmt: skip
    install_plugins({"lazy": "manifest_only.backend:Backend_"})
    record = PluginRegistry().record("lazy")
    assert record.formats == ("onnx", "safetensors")
    assert "manifest_only.backend" not in sys.modules
    assert record.status is BackendStatus.DISCOVERED


@pytest.mark.parametrize(
    "manifest",
    [
        "[backends.lazy\nformats = ['onnx']\n",  # not TOML
        "[backends.lazy]\nformats = 'onnx'\n",  # not a list
        "[backends.other]\nformats = ['onnx']\n",  # not this backend's
        "formats = ['onnx']\n",  # no backends table
    ],
)
def test_a_broken_manifest_means_no_formats(install_plugins, write_plugin, manifest) -> None:
    write_plugin("broken_manifest", manifest)
    install_plugins({"lazy": "broken_manifest.backend:Backend_"})
    assert PluginRegistry().record("lazy").formats == ()
    assert "broken_manifest.backend" not in sys.modules


def test_no_manifest_means_no_formats(install_plugins) -> None:
    install_plugins({"fake": "fake_backend:FakeBackend"})  # a plain module
    assert PluginRegistry().record("fake").formats == ()
    assert "fake_backend" not in sys.modules


def test_the_core_picks_the_backend_for_a_model_by_manifest(install_plugins, write_plugin,
                                                            tmp_path) -> None:  # fmt: skip
    from importlib.metadata import entry_points

    import numpy as np
    from safetensors.numpy import save_file

    from studio.core.app import Core
    from studio.core.model_files import ModelFileError
    from studio.core.registry import GROUP

    write_plugin("graphs_plugin", '[backends.graphs]\nformats = ["onnx"]\n',
                 'raise RuntimeError("the graphs backend was imported")\n')  # fmt: skip
    write_plugin("tensors_plugin", '[backends.tensors]\nformats = ["safetensors"]\n')
    install_plugins({"graphs": "graphs_plugin.backend:Backend_",
                     "tensors": "tensors_plugin.backend:Backend_"})  # fmt: skip
    model = tmp_path / "weights.safetensors"
    save_file({"layer.weight": np.zeros((2, 2), np.float32)}, str(model))
    folder = tmp_path / "diffusers-like"
    folder.mkdir()
    (folder / "model_index.json").write_text("{}")
    with Core.open(tmp_path / "data") as core:
        ours = [p for p in entry_points(group=GROUP) if p.name in ("graphs", "tensors")]
        core.registry = PluginRegistry(ours)  # these two only, whatever else is installed
        assert core.backend_for_model(str(model)) == "tensors"
        assert not {"graphs_plugin.backend", "tensors_plugin.backend"} & set(sys.modules)
        core.registry.get("tensors")
        assert "tensors_plugin.backend" in sys.modules
        assert "graphs_plugin.backend" not in sys.modules
        with pytest.raises(ModelFileError, match="no installed backend runs diffusers models"):
            core.backend_for_model(str(folder))
