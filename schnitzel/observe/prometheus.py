"""Prometheus metrics of a run, read from the runtime's snapshot at scrape time.

A custom collector: nothing is counted twice and the hot path pays nothing; each scrape asks
for one snapshot (the run report, live) on the runtime's event loop and turns it into metric
families named after Vector's conventions:

    schnitzel_component_received_packets_total{component_id,component_kind,component_type}
    schnitzel_component_sent_packets_total{...}           out: emitted, or delivered (sinks)
    schnitzel_component_discarded_packets_total{...,reason}
    schnitzel_component_errors_total{...}
    schnitzel_buffer_packets{...}                          packets in the node's inbox
    schnitzel_durable_backlog_packets{...}                 packets in its durable store
    schnitzel_component_health{...,state}                  1 for the node's health, 0 else
    schnitzel_packets_emitted_total, schnitzel_packets_delivered_total,
    schnitzel_packets_dropped_total, schnitzel_errors_total   the report's totals
    schnitzel_build_info{version}                          1

`component_kind` is the node kind (source, transform, ..., sink), `component_type` its plugin.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from schnitzel.contract.run_report import RunReport
from schnitzel.observe.metrics_addr import MetricsAddrError, parse_addr

__all__ = ["HEALTH_STATES", "MetricsServer", "SnapshotCollector"]

HEALTH_STATES = ("ok", "degraded", "failing")
_LABELS = ["component_id", "component_kind", "component_type"]
SNAPSHOT_TIMEOUT_S = 10.0
"""How long a scrape waits for the event loop to build the snapshot."""


class SnapshotCollector(Collector):
    """Metric families from `snapshot()`, a run report; called on each scrape."""

    def __init__(self, snapshot: Callable[[], RunReport], version: str) -> None:
        self._snapshot = snapshot
        self._version = version

    def collect(self) -> Iterator[Metric]:
        report = self._snapshot()
        families = _component_families()
        for node_id, node in report["nodes"].items():
            labels = [node_id, node["kind"], node["plugin"]]
            families["received"].add_metric(labels, node["received"])
            families["sent"].add_metric(labels, node["out"])
            families["errors"].add_metric(labels, node["errors"])
            families["buffer"].add_metric(labels, node["queue_depth"])
            for reason, count in sorted(node["dropped_by_reason"].items()):
                families["discarded"].add_metric([*labels, reason], count)
            durable = node.get("durable")  # durable inboxes only
            if durable is not None:
                families["backlog"].add_metric(labels, durable["backlog"])
            for state in HEALTH_STATES:
                value = 1.0 if node["health"] == state else 0.0
                families["health"].add_metric([*labels, state], value)
        yield from families.values()
        totals = report["totals"]
        for name, key, value in (
            ("schnitzel_packets_emitted", "emitted", totals["emitted"]),
            ("schnitzel_packets_delivered", "delivered", totals["delivered"]),
            ("schnitzel_packets_dropped", "dropped", totals["dropped"]),
            ("schnitzel_errors", "errors", totals["errors"]),
        ):
            yield CounterMetricFamily(name, f"The run report's totals.{key}.", value)
        info = GaugeMetricFamily("schnitzel_build_info", "schnitzel's version.", labels=["version"])
        info.add_metric([self._version], 1.0)
        yield info


def _component_families() -> dict[str, Any]:
    return {
        "received": CounterMetricFamily(
            "schnitzel_component_received_packets",
            "Packets that entered the node's inbox.",
            labels=_LABELS,
        ),
        "sent": CounterMetricFamily(
            "schnitzel_component_sent_packets",
            "Packets the node passed on (a sink: delivered).",
            labels=_LABELS,
        ),
        "discarded": CounterMetricFamily(
            "schnitzel_component_discarded_packets",
            "Packets dropped at the node, by reason.",
            labels=[*_LABELS, "reason"],
        ),
        "errors": CounterMetricFamily(
            "schnitzel_component_errors", "Packets the node failed on.", labels=_LABELS
        ),
        "buffer": GaugeMetricFamily(
            "schnitzel_buffer_packets", "Packets in the node's inbox.", labels=_LABELS
        ),
        "backlog": GaugeMetricFamily(
            "schnitzel_durable_backlog_packets",
            "Packets in the node's durable store.",
            labels=_LABELS,
        ),
        "health": GaugeMetricFamily(
            "schnitzel_component_health",
            "1 for the node's health state (ok, degraded, failing), 0 for the others.",
            labels=[*_LABELS, "state"],
        ),
    }


class MetricsServer:
    """`/metrics` on HOST:PORT for one run, served by prometheus-client on its own thread;
    each scrape takes the snapshot on the run's event loop."""

    def __init__(self, addr: str, snapshot: Callable[[], RunReport], version: str) -> None:
        self.host, self.port = parse_addr(addr)
        self._loop = asyncio.get_running_loop()
        self._snapshot = snapshot
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(SnapshotCollector(self._on_loop, version))
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Listen, or raise `MetricsAddrError` saying why not (address in use, ...)."""
        from prometheus_client.exposition import start_http_server

        try:
            self._server, self._thread = start_http_server(
                self.port, addr=self.host, registry=self.registry
            )
        except OSError as exc:
            raise MetricsAddrError(
                f"cannot serve metrics on {self.host}:{self.port}: {exc.strerror or exc}; "
                "choose another --metrics-addr"
            ) from exc
        self.port = int(self._server.server_address[1])

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _on_loop(self) -> RunReport:
        async def take() -> RunReport:
            return self._snapshot()

        return asyncio.run_coroutine_threadsafe(take(), self._loop).result(SNAPSHOT_TIMEOUT_S)
