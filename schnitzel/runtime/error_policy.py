"""A node's `on_error` policy: failed packets and bad source records are counted and logged,
then sent to the dead-letter node, or stop the run, as the graph says (`park` is applied
when a durable inbox settles the batch: runners._settle)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from schnitzel.contract.packet import StreamPacket
from schnitzel.errors import BadRecord
from schnitzel.runtime.events import EventLog
from schnitzel.runtime.metrics import message_of
from schnitzel.runtime.node import Node
from schnitzel.runtime.processing import Failure
from schnitzel.runtime.stop_reason import StopReason

__all__ = ["LOGGED_ERRORS_PER_NODE", "ErrorPolicy"]

LOGGED_ERRORS_PER_NODE = 10
"""Errors logged one by one per node; after that every 1000th (all are counted)."""

RequestStop = Callable[[str, str], None]
"""(reason, detail): stop the run (the runtime's `request_stop`)."""


class ErrorPolicy:
    """Applies each node's `on_error` to what it failed on."""

    def __init__(self, logger: logging.Logger, events: EventLog, request_stop: RequestStop) -> None:
        self._logger = logger
        self._events = events
        self._request_stop = request_stop

    async def handle_failures(self, node: Node, failures: list[Failure]) -> None:
        """Count and log each failed packet, then apply the node's `on_error` policy."""
        for packet, exc in failures:
            self._record_error(node, packet.packet_id, exc)
        policy = node.resolved.spec.on_error
        if policy == "dead_letter" and node.dead_letter is not None:
            letters = [_dead_letter(node.id, packet, exc) for packet, exc in failures]
            await node.dead_letter.put(letters)
        elif policy == "stop":
            packet, exc = failures[0]
            self._request_stop(
                StopReason.ERROR,
                f"node {node.id!r} failed on packet {packet.packet_id}: {message_of(exc)}",
            )

    async def bad_records(self, node: Node, records: list[BadRecord]) -> bool:
        """Apply a source's `on_error` to records its plugin could not turn into packets:
        each is counted as an error; `dead_letter` sends a packet describing each to the
        dead-letter sink; `stop` ends the source at the first (False: the source must end)."""
        policy = node.resolved.spec.on_error
        if policy == "stop":
            await self.source_failed(node, records[0])
            return False
        for record in records:
            self._record_error(node, None, record)
        if policy == "dead_letter" and node.dead_letter is not None:
            await node.dead_letter.put([_bad_record_letter(node.id, r) for r in records])
        return True

    async def source_failed(self, node: Node, exc: Exception) -> None:
        """A source's iterator raised: the source ends; `on_error: stop` stops the graph."""
        self._record_error(node, None, exc)
        self._events.add("error", f"source ended with an error: {message_of(exc)}", node.id)
        if node.resolved.spec.on_error == "stop":
            self._request_stop(StopReason.ERROR, f"source {node.id!r} failed: {message_of(exc)}")

    def _record_error(self, node: Node, packet_id: str | None, exc: Exception) -> None:
        record = node.metrics.error(packet_id, exc)
        count = node.metrics.errors
        if count <= LOGGED_ERRORS_PER_NODE or count % 1000 == 0:
            self._logger.warning(
                "node %s: %s on packet %s: %s (%d errors so far)",
                node.id,
                record.error,
                packet_id,
                record.message,
                count,
                extra={"node": node.id, "packet_id": packet_id},
            )


def _bad_record_letter(node_id: str, record: BadRecord) -> StreamPacket:
    """The dead letter of a bad input record: the record described as portable JSON."""
    error = {"node": node_id, "error": type(record).__name__, "message": str(record)}
    line = record.details.get("line")
    seq = line if isinstance(line, int) else 0
    meta: dict[str, Any] = {"error": error}
    if record.key is not None:
        meta["idempotency_key"] = record.key
    return StreamPacket.new("bad_record", node_id, seq, record.describe(), meta=meta)


def _dead_letter(node_id: str, packet: StreamPacket, exc: Exception) -> StreamPacket:
    error = {"node": node_id, "error": type(exc).__name__, "message": message_of(exc)}
    return packet.evolve(meta={**packet.meta, "error": error})
