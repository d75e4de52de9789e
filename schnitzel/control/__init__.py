"""The control plane: the in-process control API (`RuntimeControl`, every client goes through
it), hot swap, throttles, reload, who changes what (actor, audit log), the controller, and the
control socket with its clients. It stands on the runtime and never the other way round
(docs/architecture.md, "Floors").

Exports load on first use: `schnitzel ctl` imports the socket client without the runtime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from schnitzel.control.runtime_control import RuntimeControl

__all__ = ["RuntimeControl"]

_EXPORTS = {"RuntimeControl": "schnitzel.control.runtime_control"}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'schnitzel.control' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
