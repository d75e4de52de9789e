"""A plugin's optional dependency, imported when its node opens: a box without the package gets
an error that names the node, the package and the extra to install, not an ImportError."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["import_extra"]


def import_extra(
    module: str,
    *,
    node_id: str,
    needed_by: str,
    package: str,
    extra: str,
    error: type[Exception],
) -> ModuleType:
    """Import `module`; without it raise `error`: "node 'cam': `needed_by` needs `package`;
    install schnitzel[`extra`]"."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise error(
            f"node {node_id!r}: {needed_by} needs {package}; install schnitzel[{extra}]"
        ) from exc
