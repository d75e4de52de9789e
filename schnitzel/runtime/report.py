"""The run report (DESIGN 3.5): built from the live nodes, the same shape while running
(`status` "running") and at the end."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from schnitzel.contract.run_report import ErrorEntry, NodeReport, RunReport, RunStatus
from schnitzel.runtime.durable_check import is_durable
from schnitzel.runtime.health import Health
from schnitzel.runtime.knobs import knob_values, limits_report
from schnitzel.runtime.node import Node

if TYPE_CHECKING:
    from schnitzel.runtime.runtime import Runtime

__all__ = ["build_report", "node_report", "run_status"]


def node_report(node: Node, can_rollback: bool = False) -> NodeReport:
    """One node's entry of the report. Percentiles are those of the last metrics tick (at
    most a second old while running; exact in the final report)."""
    m = node.metrics
    inbox = node.inbox
    memory = None if inbox is None or is_durable(inbox) else inbox
    delta = node.window.delta()
    rate_in = rate_out = 0.0
    if delta is not None and delta[0] > 0:
        seconds, d = delta
        rate_in, rate_out = d.processed / seconds, d.emitted / seconds
    # declared limits: the controller's consent to turn a knob
    limits, declared_limits = limits_report(node)
    entry: NodeReport = {
        "kind": node.kind,
        "plugin": node.resolved.spec.plugin,
        "in": m.processed,
        "out": m.delivered if node.kind == "sink" else m.emitted,
        "dropped": m.dropped_total,
        "errors": m.errors,
        "abandoned": m.abandoned,
        "queue_depth": inbox.depth if inbox is not None else 0,
        "queue_depth_max": m.depth_max,
        "latency_ms": node.latency_ms,
        "health": node.health,
        "health_reason": node.health_reason,
        "received": m.received,
        "filtered": m.filtered,
        "dropped_by_reason": dict(m.dropped),
        "processing_ms": node.processing_ms,
        "rate_in_per_s": round(rate_in, 1),
        "rate_out_per_s": round(rate_out, 1),
        "queue_capacity": inbox.capacity if inbox is not None else 0,
        # in-memory bytes only: a durable inbox's `max_store_bytes` bounds its file ("durable")
        "queue_bytes": 0 if memory is None else memory.bytes,
        "queue_max_bytes": None if memory is None else memory.max_bytes,
        "overflow": node.resolved.spec.inbox.overflow,
        "paused": node.paused,
        "recent_errors": [
            ErrorEntry(ts=e.ts, packet_id=e.packet_id, error=e.error, message=e.message)
            for e in m.recent_errors
        ],
        "trouble": node.troubles.report(),
        "retries": node.troubles.trouble.total,
        "throttle": knob_values(node),
        "limits": limits,
        "declared_limits": declared_limits,
        "generation": node.generation,
        "can_rollback": can_rollback,
    }
    plugin_stats = _plugin_stats(node)
    if plugin_stats is not None:
        entry["plugin_stats"] = plugin_stats
    if node.kind == "sink":
        entry["delivered"] = m.delivered
    if node.pacer is not None:
        entry["rate_hz"] = node.pacer.rate_hz
    if is_durable(inbox):
        entry["durable"] = inbox.summary()
    return entry


def run_status(runtime: Runtime) -> RunStatus:
    """ok, degraded (errors or packets lost) or error (stopped by an error)."""
    if runtime.stop_reason == "error" or any(n.metrics.crashed for n in runtime.nodes.values()):
        return "error"
    for node in runtime.nodes.values():  # every drop reason is a loss; filtering is not
        if node.metrics.errors or node.metrics.dropped_total or node.health != Health.OK:
            return "degraded"
        if is_durable(node.inbox) and (
            node.inbox.stats.quarantined
            or node.inbox.stats.lost
            or node.inbox.stats.rows_quarantined
        ):
            return "degraded"  # a store was unreadable, lost rows or kept damaged ones aside
    return "ok"


def build_report(runtime: Runtime) -> RunReport:
    """The whole report: status, stop reason, totals and every node."""
    nodes = {
        node_id: node_report(node, can_rollback=runtime.can_rollback(node_id))
        for node_id, node in runtime.nodes.items()
    }
    sources = [n for n in runtime.nodes.values() if n.kind == "source"]
    sinks = [n for n in runtime.nodes.values() if n.kind == "sink"]
    finished = runtime.stop_reason is not None and runtime.finished
    started = runtime.started_wall or time.time()
    ended = runtime.ended_wall if finished else time.time()
    path = runtime.graph.path
    return {
        "status": run_status(runtime) if finished else "running",
        "stop_reason": runtime.stop_reason if finished else None,
        "graph": str(path) if path is not None else "<memory>",
        "duration_s": round(max((ended or started) - started, 0.0), 3),
        "totals": {
            "emitted": sum(n.metrics.emitted for n in sources),
            "delivered": sum(n.metrics.delivered for n in sinks),
            "dropped": sum(n.metrics.dropped_total for n in runtime.nodes.values()),
            "errors": sum(n.metrics.errors for n in runtime.nodes.values()),
            "filtered": sum(n.metrics.filtered for n in runtime.nodes.values()),
            "in_flight": runtime.in_flight.count,
        },
        "stop_detail": runtime.stop_detail,
        "stopping": runtime.stopping and not finished,
        "started": runtime.started_wall,
        "run_id": runtime.run_id,
        "pid": os.getpid(),
        "controller": runtime.graph.spec.runtime.controller.mode,
        "nodes": nodes,
    }


def _plugin_stats(node: Node) -> dict[str, Any] | None:
    """What the plugin reports about itself (`stats()`, optional), or why it could not."""
    stats = getattr(node.plugin, "stats", None)
    if not callable(stats):
        return None
    try:
        value = stats()
    except Exception as exc:  # a plugin's bug must not take the report (or the console) down
        return {"error": f"stats() raised {type(exc).__name__}: {exc}"}
    return value if isinstance(value, dict) else {"error": "stats() did not return a dict"}
