"""Calling a plugin on a micro-batch: one function per way a plugin can be written.

Each returns what passes on and which packets failed, so the runner counts and applies the
error policy in one place. Plain functions, so the same code runs inline on the event loop
and in a node's thread pool.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from schnitzel.contract.packet import StreamPacket
from schnitzel.registry.plugin import Processor, Sink

__all__ = [
    "Failure",
    "Outcome",
    "Routed",
    "add_result",
    "checked_outputs",
    "deliver_each",
    "process_each",
    "run_batch_method",
]

Failure = tuple[StreamPacket, Exception]


class Routed(NamedTuple):
    """A packet a plugin with several output ports sends to one named port."""

    port: str
    packet: StreamPacket


class Outcome:
    """What a plugin made of a batch."""

    __slots__ = ("failures", "filtered", "outputs", "routed")

    def __init__(self) -> None:
        self.outputs: list[Any] = []
        self.filtered = 0
        self.failures: list[Failure] = []
        self.routed = False
        """True when some output is a Routed packet (sent to a named port)."""

    def merge(self, other: Outcome) -> None:
        self.outputs.extend(other.outputs)
        self.filtered += other.filtered
        self.failures.extend(other.failures)
        self.routed = self.routed or other.routed


def process_each(process: Callable[[StreamPacket], Any], batch: list[StreamPacket]) -> Outcome:
    """Call `process` per packet; a raise fails only that packet."""
    outcome = Outcome()
    failures = outcome.failures
    append = outcome.outputs.append
    for packet in batch:
        try:
            result = process(packet)
        except Exception as exc:
            failures.append((packet, exc))
            continue
        if result.__class__ is StreamPacket:  # the common case, kept inline
            append(result)
        else:
            add_result(outcome, packet, result)
    return outcome


def add_result(outcome: Outcome, packet: StreamPacket, result: Any) -> None:
    """Count what one `process(packet)` call returned: passed on, filtered or failed."""
    if result is None:
        outcome.filtered += 1
    elif result.__class__ is StreamPacket:
        outcome.outputs.append(result)
    else:
        try:
            items = checked_outputs(result)
        except TypeError as exc:
            outcome.failures.append((packet, exc))
            return
        if not items:
            outcome.filtered += 1
        outcome.outputs.extend(items)
        outcome.routed = outcome.routed or any(i.__class__ is Routed for i in items)


def checked_outputs(result: Any) -> list[Any]:
    """What a `process` call returned besides a packet or None: a Routed packet or an iterable
    of packets. Anything else is the plugin's mistake, reported on the input packet."""
    if result.__class__ is Routed:
        return [result]
    if isinstance(result, str | bytes | dict) or not hasattr(result, "__iter__"):
        raise TypeError(_BAD_RETURN.format(type(result).__name__))
    items = list(result)
    for item in items:
        if item.__class__ is not StreamPacket and item.__class__ is not Routed:
            raise TypeError(_BAD_RETURN.format(f"an iterable holding {type(item).__name__}"))
    return items


_BAD_RETURN = (
    "process() returned {}; return a StreamPacket, None, a Routed(port, packet) or an "
    "iterable of those"
)


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
    if outputs is not batch and (  # the batch itself came from an inbox: already checked
        type(outputs) is not list or not all(p.__class__ is StreamPacket for p in outputs)
    ):
        # not the contract (a generator, a tuple, Routed or None items): one by one through
        # process(), so a bad item fails on this node instead of on the next
        return process_each(plugin.process, batch)
    outcome = Outcome()
    outcome.outputs = outputs
    outcome.filtered = max(len(batch) - len(outputs), 0)
    return outcome
