"""The arguments model of each control command: strict types, no unknown keys.

Imported by `schnitzel.control.commands` at the first command a runtime serves, not while it
starts: the models need pydantic's validators, built on first use (`defer_build`).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from schnitzel.durable.parking import Selection

__all__ = [
    "Args",
    "AuditArgs",
    "EventsArgs",
    "NodeArgs",
    "ParkedArgs",
    "ParkedSelectionArgs",
    "PluginsArgs",
    "QuarantineArgs",
    "QuarantineRequeueArgs",
    "StopArgs",
    "SuggestionArgs",
    "SwapArgs",
    "ThrottleArgs",
]

NodeId = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Count = Annotated[int, Field(ge=1, le=1_000_000)]


class Args(BaseModel):
    """Arguments of a command: strict types, no unknown keys."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)


class NodeArgs(Args):
    node: NodeId


class EventsArgs(Args):
    after: Annotated[int, Field(ge=0, lt=1 << 63)] = 0
    """Only events with a `seq` above this one."""
    limit: Annotated[int, Field(ge=1, le=1000)] = 100


class AuditArgs(Args):
    limit: Annotated[int, Field(ge=1, le=10_000)] = 100


class PluginsArgs(Args):
    kind: Annotated[str, StringConstraints(max_length=32)] | None = None


class ThrottleArgs(Args):
    """Knobs left out stay as they are; `rate_hz` null means as fast as accepted."""

    node: NodeId
    rate_hz: Annotated[float, Field(allow_inf_nan=False)] | None = None
    sample_every: Count | None = None
    concurrency: Count | None = None


class SwapArgs(Args):
    node: NodeId
    plugin: Name | None = None
    """None: keep the node's plugin (a config must then be given)."""
    config: dict[str, Any] | None = None
    """None: the current config for the same plugin, a new plugin's defaults otherwise."""
    dry_run: bool = False


class SuggestionArgs(Args):
    id: Annotated[str, StringConstraints(min_length=1, max_length=64)]


class StopArgs(Args):
    force: bool = False


ParkedSeq = Annotated[int, Field(ge=1, lt=1 << 63)]


class ParkedArgs(Args):
    """List a node's parked packets (ids above `after`), or show the one `seq` whole."""

    node: NodeId
    after: Annotated[int, Field(ge=0, lt=1 << 63)] = 0
    limit: Annotated[int, Field(ge=1, le=10_000)] = 100
    seq: ParkedSeq | None = None


class ParkedSelectionArgs(Args):
    """Which parked packets: `seqs` (a list), `first`..`last` (a range), or `all`; one way."""

    node: NodeId
    seqs: Annotated[list[ParkedSeq], Field(min_length=1, max_length=10_000)] | None = None
    first: ParkedSeq | None = None
    last: ParkedSeq | None = None
    all: bool = False

    @model_validator(mode="after")
    def _one_way(self) -> ParkedSelectionArgs:
        ways = [self.seqs is not None, self.first is not None or self.last is not None, self.all]
        if sum(ways) != 1:
            raise ValueError("give exactly one of seqs, first and last, or all: true")
        if ways[1] and (self.first is None or self.last is None or self.first > self.last):
            raise ValueError("a range needs first <= last")
        return self

    def selection(self) -> Selection:
        if self.all:
            return Selection(everything=True)
        if self.seqs is not None:
            return Selection(ids=tuple(self.seqs))
        return Selection(first=self.first, last=self.last)


EntryId = Annotated[int, Field(ge=1, lt=1 << 63)]


class QuarantineArgs(Args):
    """List the quarantine entries of one durable node's store, or of every one (no node)."""

    node: NodeId | None = None


class QuarantineRequeueArgs(Args):
    """Which quarantine entries to requeue: `entries` (ids), or `all` that can be; one way."""

    node: NodeId
    entries: Annotated[list[EntryId], Field(min_length=1, max_length=10_000)] | None = None
    all: bool = False

    @model_validator(mode="after")
    def _one_way(self) -> QuarantineRequeueArgs:
        if (self.entries is not None) == self.all:
            raise ValueError("give exactly one of entries or all: true")
        return self
