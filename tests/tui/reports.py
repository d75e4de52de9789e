"""Whole run reports for console tests that care about a few figures: every key the console
reads (`RunReport`, `NodeReport`) at the value an idle node reports, then the test's own."""

from __future__ import annotations

from typing import Any, cast

from schnitzel.contract.run_report import NodeReport, RunReport

__all__ = ["node_report", "run_report"]


def node_report(**fields: Any) -> NodeReport:
    """An idle transform's entry (no inbox capacity, no plugin name), updated with `fields`."""
    report: dict[str, Any] = {
        "kind": "transform",
        "plugin": "",
        "in": 0,
        "out": 0,
        "dropped": 0,
        "errors": 0,
        "abandoned": 0,
        "queue_depth": 0,
        "queue_depth_max": 0,
        "latency_ms": {"p50": 0.0, "p99": 0.0},
        "health": "ok",
        "health_reason": "",
        "received": 0,
        "filtered": 0,
        "dropped_by_reason": {},
        "processing_ms": {"p50": 0.0, "p99": 0.0},
        "rate_in_per_s": 0.0,
        "rate_out_per_s": 0.0,
        "queue_capacity": 0,
        "queue_bytes": 0,
        "queue_max_bytes": None,
        "overflow": "block",
        "paused": False,
        "recent_errors": [],
        "trouble": None,
        "retries": 0,
        "throttle": {},
        "limits": {},
        "declared_limits": {},
        "generation": 0,
        "can_rollback": False,
    }
    report.update(fields)
    return cast(NodeReport, report)


def run_report(nodes: dict[str, NodeReport], **fields: Any) -> RunReport:
    """A running graph's report with these `nodes`, updated with `fields`."""
    report: dict[str, Any] = {
        "status": "running",
        "stop_reason": None,
        "graph": "graphs/test.yaml",
        "duration_s": 0.0,
        "totals": {
            "emitted": 0,
            "delivered": 0,
            "dropped": 0,
            "errors": 0,
            "filtered": 0,
            "in_flight": 0,
        },
        "stop_detail": "",
        "stopping": False,
        "started": None,
        "run_id": "0" * 32,
        "pid": 1,
        "controller": "off",
        "nodes": nodes,
    }
    report.update(fields)
    return cast(RunReport, report)
