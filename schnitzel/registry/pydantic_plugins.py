"""Spare the CLI pydantic's plugin discovery when no pydantic plugin is installed.

The first validator pydantic builds imports `pydantic.plugin._loader`, which imports
`importlib.metadata` (and with it the `email` package) and scans every installed distribution
for entry points of the group `pydantic`: about a tenth of `schnitzel validate`'s start-up,
to find, on almost every box, nothing. `skip_empty_plugin_discovery` looks for that group with
the registry's own scan first; only when no distribution declares it does it put in place of
`pydantic.plugin._loader` a module whose `get_plugins()` answers what pydantic's would have:
no plugins. Any other name pydantic asks that module for is served by the real module, loaded
then. Installed pydantic plugins, `PYDANTIC_DISABLE_PLUGINS`, and a loader already imported
are left to pydantic.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from types import ModuleType
from typing import Any

from schnitzel.registry.entry_points import group_entry_points

__all__ = ["LOADER", "skip_empty_plugin_discovery"]

LOADER = "pydantic.plugin._loader"
"""The module of pydantic 2 that finds pydantic plugins (`get_plugins`)."""
_GROUP = "pydantic"


class _NoPluginsLoader(ModuleType):
    """Stands in for `pydantic.plugin._loader` when no distribution declares a plugin."""

    def get_plugins(self) -> Iterable[Any]:
        """No pydantic plugins: none is installed."""
        return ()

    def __getattr__(self, name: str) -> Any:
        # A name this stand-in does not know (a newer pydantic may ask for one): load the
        # real module in its place and answer from it.
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(_load_real_loader(), name)


def skip_empty_plugin_discovery() -> bool:
    """Install the stand-in when it gives the same answer as pydantic's own discovery.
    True when it was installed (or already is)."""
    current = sys.modules.get(LOADER)
    if current is not None:
        return isinstance(current, _NoPluginsLoader)
    if "PYDANTIC_DISABLE_PLUGINS" in os.environ or group_entry_points(_GROUP):
        return False
    sys.modules[LOADER] = _NoPluginsLoader(LOADER)
    return True


def _load_real_loader() -> ModuleType:
    import importlib.machinery
    import importlib.util

    import pydantic.plugin

    spec = importlib.machinery.PathFinder.find_spec(LOADER, list(pydantic.plugin.__path__))
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot find {LOADER} in {list(pydantic.plugin.__path__)}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[LOADER] = module
    return module
