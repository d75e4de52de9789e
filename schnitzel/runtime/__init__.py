"""The embedded runtime: runs a validated graph on one asyncio loop (DESIGN 2).

`Runtime` runs a graph and returns the run report; `RuntimeControl` reads its metrics and
steers it while it runs (throttle, pause, resume, stop).

Exports load on first use, so the runtime's own modules (and `schnitzel.durable`, which
builds on them) import without pulling in the whole runtime first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from schnitzel.runtime.control import RuntimeControl
    from schnitzel.runtime.runtime import Runtime, StopReason

__all__ = ["Runtime", "RuntimeControl", "StopReason"]

_EXPORTS = {
    "Runtime": "schnitzel.runtime.runtime",
    "StopReason": "schnitzel.runtime.runtime",
    "RuntimeControl": "schnitzel.runtime.control",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'schnitzel.runtime' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
