"""Packs that name plugins with `PluginRef`: registered by name, imported on first use."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from schnitzel import PluginPack, PluginRef
from schnitzel.errors import PluginNotFound
from schnitzel.registry import PluginRegistry
from schnitzel.validate import validate_text

MODULE = textwrap.dedent(
    '''
    from typing import ClassVar
    from schnitzel import Sink, Transform

    IMPORTED = True

    class Lazy(Transform):
        """Imported only when a graph uses it."""
        name: ClassVar[str] = "lazy"

        def process(self, packet):
            return packet

    class Misnamed(Sink):
        """The pack calls it something else."""
        name: ClassVar[str] = "misnamed"
    '''
)

GRAPH = """
version: 2
nodes:
  - {id: s, kind: source, plugin: synthetic, config: {count: 1}}
  - {id: t, kind: transform, plugin: lazy}
  - {id: o, kind: sink, plugin: "null"}
edges: [{from: s, to: t}, {from: t, to: o}]
"""


@pytest.fixture
def lazy_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A module on the path, not imported yet; its name is unique to the test."""
    name = f"refs_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def registry_with(*refs: PluginRef) -> PluginRegistry:
    registry = PluginRegistry.from_entry_points()
    registry.add_pack(PluginPack("refs", refs))
    return registry


def test_a_plugin_ref_is_not_imported_until_a_graph_uses_it(lazy_module: str) -> None:
    registry = registry_with(PluginRef("lazy", "transform", f"{lazy_module}:Lazy"))
    assert "lazy" in registry.names()
    assert lazy_module not in sys.modules
    result = validate_text(GRAPH, registry=registry)
    assert result.report.valid, [p.render() for p in result.report.problems]
    assert lazy_module in sys.modules
    assert registry.lookup("lazy", "transform").__name__ == "Lazy"


def test_a_plugin_ref_that_names_another_plugin_is_broken(lazy_module: str) -> None:
    registry = registry_with(PluginRef("lazy", "sink", f"{lazy_module}:Misnamed"))
    with pytest.raises(PluginNotFound, match="installed but failed to load") as caught:
        registry.lookup("lazy", "sink")
    assert "is the sink plugin 'misnamed', but the pack names it as the sink plugin 'lazy'" in (
        str(caught.value)
    )
    assert [b.name for b in registry.broken if b.pack == "refs"] == ["lazy"]


def test_a_plugin_ref_whose_module_fails_to_import_is_broken_not_fatal() -> None:
    registry = registry_with(PluginRef("gone", "transform", "no_such_module_here:Gone"))
    with pytest.raises(PluginNotFound, match="failed to import: ModuleNotFoundError"):
        registry.lookup("gone", "transform")
    listed = {(r.plugin.name, r.pack) for r in registry.plugins()}
    assert ("synthetic", "core") in listed and ("gone", "refs") not in listed


def test_listing_every_plugin_imports_the_refs(lazy_module: str) -> None:
    registry = registry_with(PluginRef("lazy", "transform", f"{lazy_module}:Lazy"))
    assert ("lazy", "refs") in {(r.plugin.name, r.pack) for r in registry.plugins()}
    assert lazy_module in sys.modules


def test_a_plugin_ref_cannot_take_a_built_in_name() -> None:
    registry = registry_with(PluginRef("null", "sink", "anything:Null"))
    clash = next(b for b in registry.broken if b.pack == "refs")
    assert "already registered by pack 'core'" in clash.reason
    assert registry.lookup("null", "sink").__module__ == "schnitzel_plugins.core.null"


@pytest.mark.parametrize(
    ("ref", "reason"),
    [
        (PluginRef("Bad Name", "sink", "m:C"), "name the plugin with a string of [a-z0-9_-]"),
        (PluginRef("ok", "gizmo", "m:C"), "node_kind must be one of"),  # type: ignore[arg-type]
        (PluginRef("ok", "sink", "no_colon"), "target must be 'module:Class'"),
    ],
)
def test_malformed_plugin_refs_are_broken(ref: PluginRef, reason: str) -> None:
    registry = registry_with(ref)
    assert reason in next(b for b in registry.broken if b.pack == "refs").reason
