"""Shared fixtures: the real plugin registry (built once) and paths to the example graphs."""

from __future__ import annotations

from pathlib import Path

import pytest

from schnitzel.registry.registry import PluginRegistry

REPO = Path(__file__).resolve().parent.parent
GRAPHS = REPO / "graphs"


@pytest.fixture(scope="session")
def registry() -> PluginRegistry:
    """The installed packs, found through entry points as in production."""
    return PluginRegistry.from_entry_points()


def example_graphs() -> list[Path]:
    """Every runnable example graph shipped in graphs/."""
    return sorted(GRAPHS.glob("*.yaml"))
