"""The entry points of one group, read from the installed distributions' `entry_points.txt`.

`importlib.metadata.entry_points(group=...)` does the same, but importing it loads the
`email` package, and it parses every entry point of every installed distribution before
picking out one group: with pydantic's own plugin discovery, which this scan also spares the
CLI (`pydantic_plugins.py`), about a tenth of `schnitzel validate`'s start-up. This module
reads the directories on `sys.path` the way `importlib.metadata` does for them (first
distribution of a name wins; `.dist-info` and `.egg-info` directories) and parses only the
files that declare the group. Where the path holds something it does not read (a zip file or
an `.egg` on the path, a meta-path finder that provides distributions of its own), it asks
`importlib.metadata` instead, so what is found is always what `importlib.metadata` finds.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Iterable, Iterator
from typing import NamedTuple

__all__ = ["PackEntry", "group_entry_points"]

_VALUE = re.compile(r"(?P<module>[\w.]+)\s*(:\s*(?P<attr>[\w.]+)\s*)?((?P<extras>\[.*\])\s*)?$")
"""An entry point's value (`module:attr [extras]`), as `importlib.metadata` parses it."""
_METADATA_DIRS = (".dist-info", ".egg-info")


class PackEntry(NamedTuple):
    """One entry point: its name, its value (`module:attr`), and its distribution's name
    (normalised: lowercase, runs of `-_.` as one `_`)."""

    name: str
    value: str
    dist: str | None

    def load(self) -> object:
        """Import the module and return the attribute the value names."""
        match = _VALUE.match(self.value)
        if match is None:
            raise ValueError(f"{self.value!r} is not `module:attribute`")
        loaded: object = importlib.import_module(match.group("module"))
        for attr in filter(None, (match.group("attr") or "").split(".")):
            loaded = getattr(loaded, attr)
        return loaded


def group_entry_points(group: str) -> list[PackEntry]:
    """Every installed entry point of `group`, as `importlib.metadata.entry_points` finds it."""
    entries = _scan_path(group, sys.path) if _path_is_plain() else None
    return entries if entries is not None else _from_importlib_metadata(group)


def normalized_name(name: str) -> str:
    """A distribution name as `importlib.metadata` compares them (PEP 503, `-` as `_`)."""
    return re.sub(r"[-_.]+", "-", name).lower().replace("-", "_")


def _path_is_plain() -> bool:
    """True when the standard path finder is the only finder that provides distributions."""
    from importlib.machinery import PathFinder

    return not any(
        finder is not PathFinder and getattr(finder, "find_distributions", None) is not None
        for finder in sys.meta_path
    )


def _scan_path(group: str, path: Iterable[str]) -> list[PackEntry] | None:
    """The group's entry points from the directories on `path`; None when an entry is
    something only `importlib.metadata` reads (a zip file, an `.egg`)."""
    header = f"[{group}]"
    seen: set[str] = set()
    found: list[PackEntry] = []
    for root in path:
        directory = root or "."
        if os.path.isfile(directory) or directory.lower().endswith(".egg"):
            return None
        try:
            children = os.listdir(directory)
        except OSError:
            continue  # a missing directory: importlib.metadata skips it too
        for dist, child in _metadata_dirs(children):
            if dist in seen:
                continue  # an earlier distribution of the same name shadows this one
            seen.add(dist)
            text = _read(os.path.join(directory, child, "entry_points.txt"))
            if text is not None and header in text:
                found.extend(_parse(text, group, dist))
    return found


def _metadata_dirs(children: list[str]) -> Iterator[tuple[str, str]]:
    """(distribution name, directory) of the metadata directories among a path entry's
    children, grouped by name in the order `importlib.metadata` yields them."""
    by_name: dict[str, list[str]] = {}
    for child in children:
        low = child.lower()
        if low.endswith(_METADATA_DIRS):
            key = normalized_name(low.rpartition(".")[0].partition("-")[0])
            by_name.setdefault(key, []).append(child)
    for name, same_name in by_name.items():
        for child in same_name:
            yield name, child


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return None


def _parse(text: str, group: str, dist: str) -> Iterator[PackEntry]:
    """The entries of `group` in an `entry_points.txt` (an INI-like file)."""
    section: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line.strip("[]")
            continue
        if section == group:
            name, _, value = line.partition("=")
            yield PackEntry(name.strip(), value.strip(), dist)


def _from_importlib_metadata(group: str) -> list[PackEntry]:
    from importlib.metadata import entry_points

    found = []
    for entry in entry_points(group=group):
        # `_normalized_name` comes from the dist-info directory's name; `name` parses the
        # whole METADATA file with the email package
        dist = getattr(entry.dist, "_normalized_name", None) or getattr(entry.dist, "name", None)
        found.append(PackEntry(entry.name, entry.value, dist if isinstance(dist, str) else None))
    return found
