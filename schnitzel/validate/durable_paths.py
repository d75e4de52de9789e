"""Rules for durable inboxes' files: one file per inbox, and a place it can be written."""

from __future__ import annotations

import os
from pathlib import Path

from schnitzel.validate.state import CheckState

__all__ = ["check_durable_paths"]


def check_durable_paths(state: CheckState) -> None:
    """Refuse two inboxes sharing a store file; warn when a store cannot be written."""
    graph_dir = state.path.parent if state.path is not None else Path.cwd()
    owners: dict[Path, str] = {}
    for entry in state.nodes.values():
        durable = entry.spec.inbox.durable
        if durable is None:
            continue
        at = (*entry.at, "inbox", "durable", "path")
        path = Path(durable.path).expanduser()
        path = path if path.is_absolute() else graph_dir / path
        key = _real(path)
        owner = owners.setdefault(key, entry.spec.id)
        if owner != entry.spec.id:
            state.problem(
                "shared-durable-path",
                f"the durable inbox of {entry.spec.id!r} uses the same file as {owner!r} "
                f"({str(path)!r}); each inbox needs its own store",
                at,
                "give each durable inbox its own `path`",
                node=entry.spec.id,
            )
            continue
        why = _why_unwritable(path)
        if why:
            state.problem(
                "durable-path",
                f"durable store {str(path)!r} cannot be written: {why}; the node will not start",
                at,
                "fix the permissions, or choose another `inbox.durable.path` (relative paths "
                "resolve against the graph file)",
                node=entry.spec.id,
                severity="warning",  # the machine may differ from the one that runs the graph
            )


def _real(path: Path) -> Path:
    """The file `path` names, through symbolic links (`st/` and a link to it name one store).
    The file may not exist yet: `realpath` resolves the part of the path that does."""
    return Path(os.path.realpath(path.absolute()))


def _why_unwritable(path: Path) -> str:
    if path.exists():
        if path.is_dir():
            return "it is a directory"
        if not os.access(path, os.R_OK | os.W_OK):
            return "no permission to read and write it"
        return ""
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{str(ancestor)!r} is a file, not a directory"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"no permission to create files in {str(ancestor)!r}"
    return ""
