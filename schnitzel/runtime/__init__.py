"""The embedded runtime: runs a validated graph on one asyncio loop (DESIGN 2).

`Runtime` runs a graph and returns the run report. What reads and steers it while it runs
(`RuntimeControl`) is the control plane's, a floor above: `schnitzel.control`.

Exports load on first use, so the runtime's own modules import without pulling in the whole
runtime first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from schnitzel.runtime.runtime import Runtime, StopReason

__all__ = ["Runtime", "StopReason"]

_EXPORTS = {
    "Runtime": "schnitzel.runtime.runtime",
    "StopReason": "schnitzel.runtime.runtime",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'schnitzel.runtime' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
