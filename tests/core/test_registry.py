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
