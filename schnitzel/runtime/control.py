"""The control API's in-process core: what the console and (later) the control socket use.

Every method runs on the runtime's event loop thread. Commands answer with a small dict
saying what changed, so a client can show and audit it.
"""

from __future__ import annotations

import math
from typing import Any

from schnitzel.errors import ControlError
from schnitzel.runtime.node import Node
from schnitzel.runtime.runtime import Runtime, StopReason

__all__ = ["RuntimeControl"]


class RuntimeControl:
    """Read metrics and steer a running graph."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def snapshot(self) -> dict[str, Any]:
        """Metrics and health of every node, in the run-report shape (DESIGN 3.5), live."""
        return self._runtime.snapshot()

    def events(self, limit: int = 100) -> list[dict[str, Any]]:
        """The most recent events (health changes, errors, stops), oldest first."""
        recent = list(self._runtime.events.recent)[-limit:]
        return [
            {"ts": e.ts, "level": e.level, "node": e.node, "message": e.message} for e in recent
        ]

    def throttle(self, node_id: str, rate_hz: float | None) -> dict[str, Any]:
        """Pace a source to `rate_hz` packets per second (None: as fast as accepted)."""
        node = self._node(node_id)
        if node.pacer is None:
            raise ControlError(f"node {node_id!r} is a {node.kind}; only sources can be throttled")
        if rate_hz is not None and not (math.isfinite(rate_hz) and 0 < rate_hz <= 1_000_000):
            raise ControlError(
                f"rate {rate_hz!r} is out of range: give packets per second in (0, 1000000]"
            )
        before = node.pacer.rate_hz
        node.pacer.set_rate(rate_hz)
        self._runtime.events.add("info", f"throttled: {before} -> {rate_hz} packets/s", node_id)
        return {"node": node_id, "rate_hz": {"before": before, "after": rate_hz}}

    def pause(self, node_id: str) -> dict[str, Any]:
        """Stop taking packets (a source stops producing; a node's inbox fills up)."""
        node = self._node(node_id)
        was = node.paused
        node.running.clear()
        if not was:
            self._runtime.events.add("info", "paused by an operator", node_id)
        return {"node": node_id, "paused": {"before": was, "after": True}}

    def resume(self, node_id: str) -> dict[str, Any]:
        """Take packets again after `pause`."""
        node = self._node(node_id)
        was = node.paused
        node.running.set()
        if was:
            self._runtime.events.add("info", "resumed by an operator", node_id)
        return {"node": node_id, "paused": {"before": was, "after": False}}

    def stop(self) -> dict[str, Any]:
        """Stop the sources and drain, as SIGTERM does."""
        self._runtime.request_stop(StopReason.SIGNAL, "stop requested through the control API")
        return {"stopping": True}

    def _node(self, node_id: str) -> Node:
        node = self._runtime.nodes.get(node_id)
        if node is None:
            known = ", ".join(sorted(self._runtime.nodes))
            raise ControlError(f"no node {node_id!r} in this graph; nodes: {known}")
        return node
