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
     │    ├── PacketDecodeError
     │    └── BadRecord ........ a source's input record cannot become a packet (yielded)
     ├── RuntimeStartError ..... a valid graph cannot start (a plugin refused to open, ...)
     ├── ControlError .......... a control command cannot be applied (unknown node, ...)
     └── ReportShapeError ...... a run report from elsewhere lacks keys this build reads

Other modules define their errors under these (the durable store's `StoreError`, the control
socket's `ProtocolError`, a pack's own, ...): the whole tree is in docs/architecture.md,
"Errors", and tests/test_exception_tree.py checks that every exception class is in it.

Every message names the thing (file, node, plugin, packet), says what is wrong and what to do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from schnitzel.validate.problems import ValidationReport

__all__ = [
    "BadRecord",
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
    "ReportShapeError",
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


class BadRecord(PacketError):
    """An input record a source cannot turn into a packet: a malformed line, bad UTF-8.

    A source *yields* it where the packet would have been (raising would end the source)
    and goes on with the next record; the node's `on_error` decides what happens to it:
    `skip` counts it as an error (message: where, why and an excerpt), `dead_letter` also
    sends a packet describing it (`describe()`) to the dead-letter sink, `stop` ends the
    source there. A source that yields them declares `reports_bad_records = True`.
    """

    EXCERPT_CHARS = 120
    """How much of the raw record the excerpt keeps."""

    def __init__(
        self,
        reason: str,
        *,
        where: str,
        raw: bytes | str = b"",
        details: dict[str, str | int | float | bool | None] | None = None,
        key: str | None = None,
    ) -> None:
        self.reason = reason
        """What is wrong with the record, in words."""
        self.where = where
        """Where it is, for an operator: `in.jsonl line 41`."""
        self.excerpt = _excerpt(raw, self.EXCERPT_CHARS)
        """The start of the raw record, as text (bytes that are not UTF-8 shown escaped)."""
        self.details = dict(details or {})
        """Portable fields a program can use: for a file, `file` and `line`."""
        self.key = key
        """The idempotency key its dead letter carries: the one the packet would have had
        (None: `<node>:<line>` from `details["line"]`)."""
        shown = f": {self.excerpt!r}" if self.excerpt else ""
        super().__init__(f"{where}: {reason}{shown}")

    def describe(self) -> dict[str, str | int | float | bool | None]:
        """The portable JSON object a dead-letter packet carries as its payload."""
        return {**self.details, "where": self.where, "reason": self.reason, "excerpt": self.excerpt}


def _excerpt(raw: bytes | str, limit: int) -> str:
    """The first `limit` characters of `raw` as text, trailing line break removed, with `…`
    when cut; bytes that are not UTF-8 appear as `\\xNN` escapes."""
    text = raw.decode("utf-8", "backslashreplace") if isinstance(raw, bytes) else raw
    text = text.rstrip("\r\n")
    return text if len(text) <= limit else text[:limit] + "…"


class RuntimeStartError(SchnitzelError):
    """A valid graph cannot start: a plugin failed to open, or this build cannot run a node."""


class ControlError(SchnitzelError):
    """A control command cannot be applied: unknown node, wrong node kind, bad value."""


class ReportShapeError(SchnitzelError):
    """A run report read from elsewhere (the control socket) lacks a key this build reads, or
    has one of the wrong type: the two ends run different versions."""
