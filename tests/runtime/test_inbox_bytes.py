"""An inbox bounded in bytes: frames count by their pixels, the overflow applies at either
bound, an empty inbox takes any one packet, and what is queued adds up."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from schnitzel.contract.packet import StreamPacket
from schnitzel.runtime.inbox import Inbox, InFlight, payload_nbytes
from schnitzel.runtime.metrics import NodeMetrics


class Blob:
    """A payload of `nbytes` bytes (as a numpy frame reports them)."""

    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes


def packets(*sizes: int) -> list[StreamPacket]:
    return [StreamPacket.new("frame", "cam", n, Blob(size)) for n, size in enumerate(sizes)]


def make(overflow: str, max_bytes: int, capacity: int = 100) -> Inbox:
    return Inbox(capacity, overflow, NodeMetrics(), InFlight(), max_bytes)


def test_payload_size_is_its_nbytes_or_zero() -> None:
    assert payload_nbytes(packets(7)[0]) == 7
    assert payload_nbytes(StreamPacket.new("sensor", "s", 0, {"nbytes": 9})) == 0


def test_drop_new_keeps_what_fits_in_bytes_and_counts_the_rest() -> None:
    inbox = make("drop_new", max_bytes=100)
    assert inbox.offer(packets(40, 40, 40, 10)) == 4
    assert len(inbox) == 2 and inbox.bytes == 80
    assert inbox.metrics.dropped_total == 2
    assert inbox.metrics.received == len(inbox) + inbox.metrics.dropped_total


def test_drop_oldest_displaces_until_the_new_fit() -> None:
    inbox = make("drop_oldest", max_bytes=100)
    first = packets(30, 30, 30)
    inbox.offer(first)
    inbox.offer(packets(60))
    kept = inbox.take(10)
    assert [p.payload.nbytes for p in kept] == [30, 60]
    assert inbox.metrics.dropped_total == 2
    assert inbox.bytes == 0 and inbox.in_flight.count == 2  # taken, not yet retired


def test_an_empty_inbox_takes_one_packet_bigger_than_its_bound() -> None:
    inbox = make("block", max_bytes=10)
    assert inbox.offer(packets(50, 5)) == 1  # the big one in, the next waits
    assert inbox.bytes == 50
    inbox.take(1)
    assert inbox.bytes == 0


def test_block_holds_the_producer_until_bytes_are_freed() -> None:
    async def scenario() -> list[int]:
        inbox = make("block", max_bytes=100)
        producer = asyncio.create_task(inbox.put(packets(60, 60, 60)))
        await asyncio.sleep(0)
        assert len(inbox) == 1 and not producer.done()
        seen = []
        while len(seen) < 3:
            await inbox.wait_items()
            batch = inbox.take(10)
            assert inbox.bytes <= 100
            seen.extend(p.payload.nbytes for p in batch)
            await asyncio.sleep(0)
        await producer
        return seen

    assert asyncio.run(scenario()) == [60, 60, 60]


@pytest.mark.parametrize("overflow", ["block", "drop_new", "drop_oldest"])
def test_the_packet_bound_still_applies(overflow: str) -> None:
    inbox = make(overflow, max_bytes=10_000, capacity=2)
    inbox.offer(packets(1, 1, 1))
    assert len(inbox) == 2


def test_a_durable_inbox_keeps_its_store_limit_apart_from_the_memory_max_bytes(
    tmp_path: Path,
) -> None:
    """The durable inbox set the memory inbox's `max_bytes` (payload `nbytes` in memory) to
    its store's limit (encoded bytes on disk): any memory-inbox path reaching it would have
    counted payloads against the disk's limit. Each name means one thing now."""
    from schnitzel.runtime.durable_inbox import DurableInbox

    limit = 5 << 20
    inbox = DurableInbox(
        16,
        "block",
        NodeMetrics(),
        InFlight(),
        tmp_path / "out.db",
        limit,
        None,
        "NORMAL",
        lambda *_: None,
    )
    assert inbox.max_bytes is None  # its window in memory is bounded in packets only
    assert inbox.max_store_bytes == limit
    assert inbox.summary()["max_bytes"] == limit  # the report's key is the graph's name
