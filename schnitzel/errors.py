"""The one exception hierarchy of schnitzel.

    SchnitzelError
     ├── GraphError ............ a graph file cannot be used
     │    ├── GraphLoadError ... the file is missing, too large, not text or not YAML
     │    └── GraphInvalid ..... the file loaded but validation found problems
     ├── PluginError ........... a plugin cannot be found, allowed or loaded
     │    ├── PluginNotFound
     │    ├── PluginNotAllowed
     │    ├── PluginLoadError
     │    └── PluginApiMismatch
     ├── PacketError ........... a packet cannot be encoded or decoded
     │    ├── PacketNotPortable
     │    └── PacketDecodeError
     ├── RuntimeStartError ..... a valid graph cannot start (a plugin refused to open, ...)
     └── ControlError .......... a control command cannot be applied (unknown node, ...)

Every message names the thing (file, node, plugin, packet), says what is wrong and what to do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from schnitzel.validate.problems import ValidationReport

__all__ = [
    "ControlError",
    "GraphError",
    "GraphInvalid",
    "GraphLoadError",
    "PacketDecodeError",
    "PacketError",
    "PacketNotPortable",
    "PluginApiMismatch",
    "PluginError",
    "PluginLoadError",
    "PluginNotAllowed",
    "PluginNotFound",
    "RuntimeStartError",
    "SchnitzelError",
]


class SchnitzelError(Exception):
    """Base class of every error schnitzel raises on purpose."""


class GraphError(SchnitzelError):
    """A graph file cannot be used."""


class GraphLoadError(GraphError):
    """The graph file is missing, too large, not UTF-8 text, or not one YAML document."""


class GraphInvalid(GraphError):
    """The graph file loaded, but validation found problems; `report` lists every one."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        count = len(report.errors)
        super().__init__(
            f"{report.source}: {count} problem{'s' if count != 1 else ''}; "
            f"run `schnitzel validate {report.source}` to list them"
        )


class PluginError(SchnitzelError):
    """A plugin cannot be found, allowed or loaded."""

    code = "unknown-plugin"
    """The validator's problem code for this error."""


class PluginNotFound(PluginError):
    """No registered plugin has that name for that node kind."""


class PluginNotAllowed(PluginError):
    """A `module:Class` reference points outside the allowlist."""

    code = "plugin-not-allowed"


class PluginLoadError(PluginError):
    """A plugin pack or class failed to import, or declares itself wrongly."""

    code = "plugin-load-failed"


class PluginApiMismatch(PluginError):
    """A plugin targets a plugin API version this runtime does not provide."""

    code = "plugin-api-mismatch"


class PacketError(SchnitzelError):
    """A packet cannot be encoded or decoded."""


class PacketNotPortable(PacketError):
    """A packet's payload is not JSON and has no payload_ref, so it cannot leave the process."""


class PacketDecodeError(PacketError):
    """Bytes or a JSON object do not hold a packet in the portable encoding."""


class RuntimeStartError(SchnitzelError):
    """A valid graph cannot start: a plugin failed to open, or this build cannot run a node."""


class ControlError(SchnitzelError):
    """A control command cannot be applied: unknown node, wrong node kind, bad value."""
