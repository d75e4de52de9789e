"""What the console shows, as frozen values built from the control API's answers.

The console never touches runtime objects: a `ConsoleSnapshot` is built from the `RunReport`
of `snapshot()` (DESIGN 3.5, typed in schnitzel/contract/run_report.py) and the graph of
`describe()`, the same data an attached console gets over the control socket (checked there,
at the edge, by `parse_run_report`). The report's keys are read directly, never with a
default: a renamed key fails the type check instead of showing as 0. Widgets react to a new
snapshot and compare it with the previous one to repaint only what changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from schnitzel.contract.run_report import (
    DurableReport,
    EventEntry,
    NodeReport,
    RunReport,
    TroubleReport,
)
from schnitzel.control.audit import audit_change
from schnitzel.runtime.knobs import plain_value

__all__ = [
    "KNOBS",
    "OVERFLOW_REASONS",
    "AuditView",
    "Bounds",
    "ConsoleSnapshot",
    "DurableView",
    "EdgeView",
    "ErrorView",
    "EventView",
    "NodeView",
    "PluginView",
    "SuggestionView",
    "Topology",
    "TopologyNode",
    "TroubleView",
    "actor_text",
    "plain_value",
]

OVERFLOW_REASONS = frozenset({"inbox_full", "displaced"})
"""Drops an overflow policy made because an inbox was full; every other reason is a loss of
another kind (a failed node, a drain timeout, a packet that could not be stored)."""

KNOBS = ("rate_hz", "sample_every", "concurrency")
"""The live throttles a node may have, in the order the console shows them."""

Bounds = tuple[float | None, float | None]
"""A knob's [lowest, highest]; None: no bound on that side."""


@dataclass(frozen=True, slots=True)
class TopologyNode:
    """One node as declared in the graph file."""

    id: str
    kind: str
    plugin: str
    config: Mapping[str, Any] = field(default_factory=dict)
    inbox: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EdgeView:
    """A directed edge between two nodes (ports as the validator named them)."""

    source: str
    target: str
    source_port: str = "out"
    target_port: str = "in"


@dataclass(frozen=True, slots=True)
class Topology:
    """The graph's shape: what the graph view lays out once."""

    graph: str
    nodes: tuple[TopologyNode, ...]
    edges: tuple[EdgeView, ...]

    @classmethod
    def from_description(cls, data: Mapping[str, Any]) -> Topology:
        """Build from `RuntimeControl.describe()`."""
        nodes = tuple(
            TopologyNode(
                n["id"], n["kind"], n["plugin"], n.get("config") or {}, n.get("inbox") or {}
            )
            for n in data["nodes"]
        )
        edges = tuple(
            EdgeView(e["from"], e["to"], e.get("from_port", "out"), e.get("to_port", "in"))
            for e in data["edges"]
        )
        return cls(str(data.get("graph", "")), nodes, edges)

    def node(self, node_id: str) -> TopologyNode | None:
        """The node with this id, or None."""
        return next((n for n in self.nodes if n.id == node_id), None)


@dataclass(frozen=True, slots=True)
class DurableView:
    """One durable inbox's backlog, as the report's `durable` entry has it."""

    path: str
    backlog: int
    bytes: int
    max_bytes: int
    max_packets: int | None
    oldest_age_s: float
    fill_rate: float
    drain_rate: float
    eta_s: float | None
    """Seconds until the backlog is empty at the current rates; None while it grows."""
    time_to_full_s: float | None
    """Seconds until the store is full at the current rates; None while it does not grow."""
    disk_errors: int
    last_error: str | None
    quarantined: str | None
    lost: int = 0
    """Packets the store owed at start that its file no longer held (`durable.lost`)."""
    lost_cause: str = ""
    rows_quarantined: int = 0
    """Damaged rows kept aside in the store's quarantine table."""
    parked: int = 0
    """Packets parked in the store (refused by the node, kept for an operator)."""
    parked_dropped: int = 0
    """Parked packets this run dropped (by an operator, or over the parking bound)."""
    requeued: int = 0
    """Parked packets this run moved back to the backlog."""

    @property
    def fill(self) -> float:
        """How full the store is against the nearer of its two limits, 0..1."""
        fill = self.bytes / self.max_bytes if self.max_bytes else 0.0
        if self.max_packets:
            fill = max(fill, self.backlog / self.max_packets)
        return min(fill, 1.0)

    @classmethod
    def from_report(cls, data: DurableReport) -> DurableView:
        """Build from a node's `durable` report entry."""
        lost = data["lost"]
        return cls(
            path=data["path"],
            backlog=data["backlog"],
            bytes=data["bytes"],
            max_bytes=data["max_bytes"],
            max_packets=data["max_packets"],
            oldest_age_s=data["oldest_age_s"],
            fill_rate=data["fill_rate_per_s"],
            drain_rate=data["drain_rate_per_s"],
            eta_s=data["eta_s"],
            time_to_full_s=data["time_to_full_s"],
            disk_errors=data["disk_errors"],
            last_error=data["last_error"],
            quarantined=data["quarantined"],
            lost=0 if lost is None else lost["count"],
            lost_cause="" if lost is None else lost["cause"],
            rows_quarantined=data["rows_quarantined"],
            parked=data["parked"],
            parked_dropped=data["parked_dropped"],
            requeued=data["requeued"],
        )


@dataclass(frozen=True, slots=True)
class ErrorView:
    """One recent failure of a node on a packet."""

    ts: float
    packet_id: str | None
    error: str
    message: str


@dataclass(frozen=True, slots=True)
class TroubleView:
    """What a node's plugin reports it is handling now (a retry, an open circuit)."""

    reason: str
    since: float
    """When the trouble began."""
    reason_since: float
    """When `reason` was first reported in it (an open circuit: when it opened)."""
    retries: int

    @classmethod
    def from_report(cls, data: TroubleReport) -> TroubleView:
        """Build from a node's `trouble` report entry."""
        return cls(data["reason"], data["since"], data["reason_since"], data["retries"])


@dataclass(frozen=True, slots=True)
class NodeView:
    """One node's live figures."""

    id: str
    kind: str
    plugin: str
    rate_in: float
    rate_out: float
    received: int
    processed: int
    out: int
    depth: int
    capacity: int
    overflow: str
    filtered: int
    dropped: int
    dropped_by_reason: tuple[tuple[str, int], ...]
    errors: int
    p50_ms: float
    p99_ms: float
    health: str
    health_reason: str
    paused: bool
    rate_hz: float | None
    """A source's pace (None: as fast as accepted, or not a source)."""
    durable: DurableView | None
    recent_errors: tuple[ErrorView, ...]
    throttle: Mapping[str, float | int | None] = field(default_factory=dict)
    """The live knobs that apply to this node (KNOBS) and their values now."""
    limits: Mapping[str, Bounds] = field(default_factory=dict)
    """The bounds of each knob in `throttle`."""
    generation: int = 0
    """0 as started; one more per swap or rollback."""
    can_rollback: bool = False
    """A swap can be undone (`rollback`)."""
    trouble: TroubleView | None = None
    """What the plugin reports it is retrying now, if anything."""
    retries: int = 0
    """Retries the plugin reported over the whole run."""
    plugin_stats: Mapping[str, Any] = field(default_factory=dict)
    """What the plugin reports about itself (`plugin_stats`: a camera's fps and reconnects,
    a detector's inference ms); empty for most plugins."""

    @property
    def fill(self) -> float:
        """How full the inbox is, 0..1 (0 for sources). A durable inbox holds more than its
        in-memory `capacity`: its fill is that of the store against its limits."""
        if self.durable is not None:
            return self.durable.fill
        return self.depth / self.capacity if self.capacity else 0.0

    @property
    def rate(self) -> float:
        """The rate a box shows: what a source emits, what any other node takes in."""
        return self.rate_out if self.kind == "source" else self.rate_in

    @property
    def overflow_drops(self) -> int:
        """Drops an overflow policy made (a full inbox)."""
        return sum(n for reason, n in self.dropped_by_reason if reason in OVERFLOW_REASONS)

    @property
    def other_drops(self) -> int:
        """Drops for any other reason (failed node, shutdown, unstorable or corrupt)."""
        return self.dropped - self.overflow_drops

    @classmethod
    def from_report(cls, node_id: str, data: NodeReport) -> NodeView:
        """Build from one node's entry of the run report."""
        latency = data["latency_ms"]
        durable = data.get("durable")
        trouble = data["trouble"]
        return cls(
            id=node_id,
            kind=data["kind"],
            plugin=data["plugin"],
            rate_in=data["rate_in_per_s"],
            rate_out=data["rate_out_per_s"],
            received=data["received"],
            processed=data["in"],
            out=data["out"],
            depth=data["queue_depth"],
            capacity=data["queue_capacity"],
            overflow=data["overflow"],
            filtered=data["filtered"],
            dropped=data["dropped"],
            dropped_by_reason=tuple(sorted(data["dropped_by_reason"].items())),
            errors=data["errors"],
            p50_ms=latency["p50"],
            p99_ms=latency["p99"],
            health=data["health"],
            health_reason=data["health_reason"],
            paused=data["paused"],
            rate_hz=data.get("rate_hz"),  # sources the runtime paces only
            durable=None if durable is None else DurableView.from_report(durable),
            recent_errors=tuple(
                ErrorView(e["ts"], e["packet_id"], e["error"], e["message"])
                for e in data["recent_errors"]
            ),
            throttle=dict(data["throttle"]),
            limits={k: _bounds(v) for k, v in data["limits"].items()},
            generation=data["generation"],
            can_rollback=data["can_rollback"],
            trouble=None if trouble is None else TroubleView.from_report(trouble),
            retries=data["retries"],
            plugin_stats=dict(data.get("plugin_stats") or {}),  # plugins with stats() only
        )


@dataclass(frozen=True, slots=True)
class EventView:
    """One event for the event log."""

    seq: int
    ts: float
    level: str
    """info, warning or error."""
    message: str
    node: str | None = None

    @classmethod
    def from_dict(cls, data: EventEntry) -> EventView:
        """Build from one entry of `RuntimeControl.events()`."""
        return cls(data["seq"], data["ts"], data["level"], data["message"], data["node"])


@dataclass(frozen=True, slots=True)
class ConsoleSnapshot:
    """The whole graph's figures at one moment."""

    status: str
    """running, then ok, degraded or error once the run ended."""
    stop_reason: str | None
    stop_detail: str
    duration_s: float
    emitted: int
    delivered: int
    dropped: int
    errors: int
    filtered: int
    in_flight: int
    nodes: Mapping[str, NodeView]
    """In graph-file order."""
    controller: str = "off"
    """The controller's mode: off, suggest or auto."""

    @property
    def running(self) -> bool:
        """True until the run has ended."""
        return self.status == "running"

    @property
    def durable_nodes(self) -> tuple[NodeView, ...]:
        """The nodes whose inbox is durable, in graph-file order."""
        return tuple(n for n in self.nodes.values() if n.durable is not None)

    def with_rates_since(self, previous: ConsoleSnapshot | None) -> ConsoleSnapshot:
        """This snapshot with each node's rates taken over the time since `previous` (the
        runtime's own rates average its 10 s health window: too slow to watch a change)."""
        if previous is None:
            return self
        seconds = self.duration_s - previous.duration_s
        if seconds <= 0:
            return self
        nodes = {}
        for node_id, node in self.nodes.items():
            before = previous.nodes.get(node_id)
            if before is None:
                nodes[node_id] = node
                continue
            nodes[node_id] = replace(
                node,
                rate_in=max(node.processed - before.processed, 0) / seconds,
                rate_out=max(node.out - before.out, 0) / seconds,
            )
        return replace(self, nodes=nodes)

    @classmethod
    def from_report(cls, data: RunReport) -> ConsoleSnapshot:
        """Build from `RuntimeControl.snapshot()` (the run report, live)."""
        totals = data["totals"]
        return cls(
            status=data["status"],
            stop_reason=data["stop_reason"],
            stop_detail=data["stop_detail"],
            duration_s=data["duration_s"],
            emitted=totals["emitted"],
            delivered=totals["delivered"],
            dropped=totals["dropped"],
            errors=totals["errors"],
            filtered=totals["filtered"],
            in_flight=totals["in_flight"],
            nodes={
                node_id: NodeView.from_report(node_id, node)
                for node_id, node in data["nodes"].items()
            },
            controller=data["controller"],
        )


@dataclass(frozen=True, slots=True)
class SuggestionView:
    """One change the controller proposed, and what became of it."""

    id: str
    node: str
    created: str
    status: str
    """open, approved, rejected, applied, rolled_back, expired or failed."""
    command: str
    args: Mapping[str, Any]
    before: Mapping[str, Any]
    rationale: str
    expected: str
    metric: Mapping[str, Any]
    decided_by: str
    """Who approved or rejected it (`alice via console`), or empty."""
    decided_at: str
    verdict: str

    @property
    def is_open(self) -> bool:
        """Waiting for an operator to approve or reject it."""
        return self.status == "open"

    @property
    def change(self) -> str:
        """`throttle rate_hz 50 -> 40`."""
        parts = [
            f"{knob} {plain_value(self.before.get(knob))} -> {plain_value(value)}"
            for knob, value in self.args.items()
        ]
        return f"{self.command} {', '.join(parts)}".strip()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SuggestionView:
        """Build from one entry of `RuntimeControl.suggestions()`."""
        action = data.get("action") or {}
        return cls(
            id=str(data["id"]),
            node=str(data.get("node") or action.get("node") or ""),
            created=str(data.get("created") or ""),
            status=str(data.get("status") or ""),
            command=str(action.get("command") or ""),
            args=dict(action.get("args") or {}),
            before=dict(data.get("before") or {}),
            rationale=str(data.get("rationale") or ""),
            expected=str(data.get("expected") or ""),
            metric=dict(data.get("metric") or {}),
            decided_by=actor_text(data.get("decided_by")),
            decided_at=str(data.get("decided_at") or ""),
            verdict=str(data.get("verdict") or ""),
        )


@dataclass(frozen=True, slots=True)
class AuditView:
    """One entry of the audit log: who changed what, why, when, and how it went."""

    ts: str
    who: str
    """`alice via console over ssh from 10.0.0.5`."""
    user: str
    ssh: str
    via: str
    action: str
    node: str
    before: Any
    after: Any
    why: str
    suggestion: str
    outcome: str
    """applied or refused."""
    error: str
    raw: Mapping[str, Any]
    """The entry as the runtime gave it, for the full view."""

    @property
    def change(self) -> str:
        """What changed, as `ctl audit` says it (`audit_change`): `paused false -> true`."""
        return audit_change(self.before, self.after, self.action)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditView:
        """Build from one entry of `RuntimeControl.audit()`."""
        who = data.get("who") or {}
        return cls(
            ts=str(data.get("ts") or ""),
            who=actor_text(who),
            user=str(who.get("user") or ""),
            ssh=str(who.get("ssh") or ""),
            via=str(who.get("via") or ""),
            action=str(data.get("action") or ""),
            node=str(data.get("node") or ""),
            before=data.get("before"),
            after=data.get("after"),
            why=str(data.get("why") or ""),
            suggestion=str(data.get("suggestion") or ""),
            outcome=str(data.get("outcome") or ""),
            error=str(data.get("error") or ""),
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True)
class PluginView:
    """A registered plugin a node could be swapped to."""

    name: str
    kind: str
    summary: str
    config_schema: Mapping[str, Any]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PluginView:
        """Build from one entry of `RuntimeControl.plugins()`."""
        return cls(
            str(data["name"]),
            str(data.get("kind") or ""),
            str(data.get("summary") or ""),
            dict(data.get("config_schema") or {}),
        )


def actor_text(who: Any) -> str:
    """An actor (`Actor.to_json()`) for people: `alice via console over ssh from 10.0.0.5`."""
    if not isinstance(who, Mapping):
        return ""
    text = f"{who.get('user') or '?'} via {who.get('via') or '?'}"
    ssh = who.get("ssh")
    if ssh:
        text += f" over ssh from {str(ssh).split()[0]}"
    return text


def _bounds(value: Any) -> Bounds:
    if not isinstance(value, list | tuple):
        return (None, None)
    low, high = [*value, None, None][:2]
    return (
        float(low) if low is not None else None,
        float(high) if high is not None else None,
    )
