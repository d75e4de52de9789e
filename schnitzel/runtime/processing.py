"""Calling a plugin on a micro-batch: one function per way a plugin can be written.

Each returns what passes on and which packets failed, so the runner counts and applies the
error policy in one place. Plain functions, so the same code runs inline on the event loop
and in a node's thread pool.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from schnitzel.contract.packet import StreamPacket
from schnitzel.registry.plugin import Processor, Sink

__all__ = ["Failure", "Outcome", "deliver_each", "process_each", "run_batch_method"]

Failure = tuple[StreamPacket, Exception]


class Outcome:
    """What a plugin made of a batch."""

    __slots__ = ("failures", "filtered", "outputs")

    def __init__(self) -> None:
        self.outputs: list[Any] = []
        self.filtered = 0
        self.failures: list[Failure] = []

    def merge(self, other: Outcome) -> None:
        self.outputs.extend(other.outputs)
        self.filtered += other.filtered
        self.failures.extend(other.failures)


def process_each(process: Callable[[StreamPacket], Any], batch: list[StreamPacket]) -> Outcome:
    """Call `process` per packet; a raise fails only that packet."""
    outcome = Outcome()
    outputs, failures = outcome.outputs, outcome.failures
    append = outputs.append
    filtered = 0
    for packet in batch:
        try:
            result = process(packet)
        except Exception as exc:
            failures.append((packet, exc))
            continue
        if result is None:
            filtered += 1
        elif result.__class__ is StreamPacket:
            append(result)
        else:
            before = len(outputs)
            outputs.extend(result)
            if len(outputs) == before:
                filtered += 1
    outcome.filtered = filtered
    return outcome


def deliver_each(deliver: Callable[[StreamPacket], Any], batch: list[StreamPacket]) -> Outcome:
    """Call `deliver` per packet; a raise fails only that packet."""
    outcome = Outcome()
    for packet in batch:
        try:
            deliver(packet)
        except Exception as exc:
            outcome.failures.append((packet, exc))
    return outcome


def run_batch_method(plugin: Processor | Sink, batch: list[StreamPacket]) -> Outcome:
    """The plugin's all-or-nothing batch method, falling back to one packet at a time when it
    raises so that the error lands on the packet that caused it."""
    if isinstance(plugin, Sink):
        try:
            plugin.deliver_batch(batch)
        except Exception:
            return deliver_each(plugin.deliver, batch)
        return Outcome()
    try:
        outputs = plugin.process_batch(batch)
    except Exception:
        return process_each(plugin.process, batch)
    outcome = Outcome()
    outcome.outputs = outputs
    outcome.filtered = max(len(batch) - len(outputs), 0)
    return outcome
