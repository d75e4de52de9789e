"""The control API's in-process core: what the console and (later) the control socket use.

Every method runs on the runtime's event loop thread. Commands answer with a small dict
saying what changed, so a client can show and audit it.
"""

from __future__ import annotations

import math
import re
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

    def describe(self) -> dict[str, Any]:
        """The graph being run: nodes (kind, plugin, config, inbox) and edges, in file order.
        It does not change while the graph runs (a swap will say so in an event)."""
        graph = self._runtime.graph
        nodes = []
        for node_id, resolved in graph.nodes.items():
            spec = resolved.spec
            nodes.append(
                {
                    "id": node_id,
                    "kind": spec.kind,
                    "plugin": spec.plugin,
                    "config": _plain(resolved.config),
                    "inbox": spec.inbox.model_dump(mode="json"),
                    "dead_letter": spec.dead_letter,
                }
            )
        edges = [
            {"from": e.source, "from_port": e.source_port, "to": e.target, "to_port": e.target_port}
            for e in graph.edges
        ]
        path = graph.path
        return {"graph": str(path) if path else "<memory>", "nodes": nodes, "edges": edges}

    def events(self, limit: int = 100, after: int = 0) -> list[dict[str, Any]]:
        """The most recent events (health changes, errors, stops), oldest first; `after`: only
        those with a `seq` above it (what a client has not seen yet)."""
        recent = [e for e in self._runtime.events.recent if e.seq > after][-limit:]
        return [
            {"seq": e.seq, "ts": e.ts, "level": e.level, "node": e.node, "message": e.message}
            for e in recent
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

    def stop(self, force: bool = False, why: str = "through the control API") -> dict[str, Any]:
        """Stop the sources and drain, as SIGTERM does; `force`: stop now, as a second signal
        does (queued in-memory packets are dropped, durable inboxes keep theirs)."""
        if force:
            self._runtime.force_stop(f"a stop {why}")
        else:
            self._runtime.request_stop(StopReason.SIGNAL, f"stop requested {why}")
        return {"stopping": True, "forced": force}

    def _node(self, node_id: str) -> Node:
        node = self._runtime.nodes.get(node_id)
        if node is None:
            known = ", ".join(sorted(self._runtime.nodes))
            raise ControlError(f"no node {node_id!r} in this graph; nodes: {known}")
        return node


_SECRET_KEY = re.compile(r"token|secret|passw|api[-_]?key|authori|cookie|credential", re.I)
_NOT_SECRET = re.compile(r"_(env|file|path)$", re.I)
"""Keys that name where a secret is (`token_env`), not the secret."""
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]+:)[^@/\s]+@", re.I)


def _plain(config: Any) -> Any:
    """A plugin's parsed config as JSON-ready data, with values under secret-looking keys (an
    Authorization header, an API key, a cookie) and passwords in URLs masked: what a console
    shows may be screenshotted."""
    data = config.model_dump(mode="json") if hasattr(config, "model_dump") else config
    return _masked(data)


def _masked(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "***" if _is_secret_key(k) else _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    if isinstance(value, str):
        return _URL_PASSWORD.sub(r"\1***@", value)
    return value


def _is_secret_key(key: object) -> bool:
    return isinstance(key, str) and bool(_SECRET_KEY.search(key)) and not _NOT_SECRET.search(key)
