"""The plugin API version and the rule for which plugins this runtime can load."""

from __future__ import annotations

import re

__all__ = ["PLUGIN_API_VERSION", "api_compatible", "parse_version"]

PLUGIN_API_VERSION = "1.3"
"""Bumped in minor for additions plugins may use, in major for breaking changes.

1.1: `PluginRef` (packs name plugins imported on first use).
1.2: `StreamPacket.new_many`; a source's iterator may offer `next_batch(limit)`.
1.3: `NodeContext.run_id`; `LockFile` (one run per file a plugin keeps).
"""

_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)(?:\.(0|[1-9]\d*))?$")


def parse_version(text: str) -> tuple[int, int]:
    """(major, minor) of a `MAJOR.MINOR[.PATCH]` string; ValueError otherwise."""
    match = _SEMVER.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not a MAJOR.MINOR[.PATCH] version")
    return int(match.group(1)), int(match.group(2))


def api_compatible(plugin_version: str, runtime_version: str = PLUGIN_API_VERSION) -> bool:
    """A plugin loads when it targets the same major and no newer minor than the runtime."""
    plugin_major, plugin_minor = parse_version(plugin_version)
    runtime_major, runtime_minor = parse_version(runtime_version)
    return plugin_major == runtime_major and plugin_minor <= runtime_minor
