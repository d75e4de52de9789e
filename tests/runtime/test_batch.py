"""The batch a node takes ends the same way from a memory and a durable inbox: settled, given
back (first in line again) or abandoned (a durable inbox keeps it for the next run); and a
durable inbox's `offer` admits without waiting, as the memory inbox's does."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Coroutine
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from schnitzel.contract.codec import decode_packet
from schnitzel.contract.packet import StreamPacket
from schnitzel.durable.rows import live_packets
from schnitzel.runtime.durable_inbox import DurableInbox
from schnitzel.runtime.inbox import Inbox, InFlight
from schnitzel.runtime.inbox_protocol import NodeInbox
from schnitzel.runtime.metrics import NodeMetrics

GUARD_S = 60.0
"""Hang guard only."""

Make = Callable[[Path], Coroutine[Any, Any, NodeInbox]]


def packets(n: int, start: int = 0) -> list[StreamPacket]:
    return [StreamPacket.new("sensor", "s", seq, {"n": seq}) for seq in range(start, start + n)]


async def memory(_path: Path) -> NodeInbox:
    return Inbox(16, "block", NodeMetrics(), InFlight())


async def durable(path: Path) -> NodeInbox:
    inbox = DurableInbox(
        16, "block", NodeMetrics(), InFlight(), path, 1 << 30, None, "NORMAL", lambda *_: None
    )
    await inbox.open()
    return inbox


async def closed(inbox: NodeInbox) -> None:
    if isinstance(inbox, DurableInbox):
        await inbox.shutdown()


def stored_seqs(path: Path) -> list[int]:
    with closing(sqlite3.connect(path)) as db:
        rows = [body for _seq, _at, body in live_packets(db)]
    return [decode_packet(body).seq for body in rows]


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, GUARD_S))


def in_flight(inbox: NodeInbox) -> InFlight:
    assert isinstance(inbox, Inbox)
    return inbox.in_flight


@pytest.mark.parametrize("make", [memory, durable], ids=["memory", "durable"])
def test_a_batch_given_back_is_taken_again_first(make: Make, tmp_path: Path) -> None:
    async def scenario() -> None:
        inbox = await make(tmp_path / "q.db")
        await inbox.put(packets(5))
        first = inbox.take(3)
        assert [p.seq for p in first] == [0, 1, 2]
        assert first.give_back() == 3
        assert first.give_back() == 0  # a batch ends once
        assert inbox.left == 0 and len(inbox) == 5
        again = inbox.take(10)
        assert [p.seq for p in again] == [0, 1, 2, 3, 4]
        again.settle()
        assert in_flight(inbox).count == 0
        await closed(inbox)

    run(scenario())


@pytest.mark.parametrize("make", [memory, durable], ids=["memory", "durable"])
def test_a_settled_batch_leaves_the_in_flight_count(make: Make, tmp_path: Path) -> None:
    async def scenario() -> None:
        inbox = await make(tmp_path / "q.db")
        await inbox.put(packets(4))
        assert in_flight(inbox).count == 4
        batch = inbox.take(3)
        assert batch.start == 0 and len(batch) == 3
        assert in_flight(inbox).count == 4  # taken, not done yet
        batch.settle()
        batch.settle()  # a second settle changes nothing
        assert in_flight(inbox).count == 1
        assert inbox.take(3).start == 3
        await closed(inbox)

    run(scenario())


def test_an_abandoned_memory_batch_is_lost_for_the_caller_to_count(tmp_path: Path) -> None:
    async def scenario() -> None:
        inbox = await memory(tmp_path / "unused")
        await inbox.put(packets(3))
        batch = inbox.take(3)
        assert batch.abandon() == 0  # none kept: lost
        assert in_flight(inbox).count == 0
        assert len(inbox) == 0

    run(scenario())


def test_an_abandoned_durable_batch_stays_in_the_store_first_in_line(tmp_path: Path) -> None:
    path = tmp_path / "q.db"

    async def scenario() -> None:
        inbox = await durable(path)
        await inbox.put(packets(5))
        batch = inbox.take(2)
        assert inbox.backlog == 5  # the batch the node holds is still in the store
        assert batch.abandon() == 2  # kept
        assert in_flight(inbox).count == 3
        assert [p.seq for p in inbox.take(10)] == [0, 1, 2, 3, 4]
        await closed(inbox)

    run(scenario())
    assert stored_seqs(path) == [0, 1, 2, 3, 4]


def test_a_durable_offer_admits_to_the_next_commit_without_waiting(tmp_path: Path) -> None:
    path = tmp_path / "q.db"

    async def scenario() -> None:
        inbox = DurableInbox(
            16, "block", NodeMetrics(), InFlight(), path, 1 << 30, 3, "NORMAL", lambda *_: None
        )
        await inbox.open()
        offered = packets(5)
        assert inbox.offer(offered) == 3  # block: room for 3, the producer waits for the rest
        assert inbox.metrics.received == 0  # admitted, not committed yet
        await inbox.flush(GUARD_S)
        assert inbox.metrics.received == 3 and inbox.backlog == 3
        inbox.take(3).settle()
        await inbox.put(offered[3:])  # `put` finishes what `offer` left
        await inbox.shutdown()

    run(scenario())
    assert stored_seqs(path) == [3, 4]


def test_a_durable_offer_under_drop_new_counts_what_did_not_fit(tmp_path: Path) -> None:
    path = tmp_path / "q.db"

    async def scenario() -> None:
        inbox = DurableInbox(
            16, "drop_new", NodeMetrics(), InFlight(), path, 1 << 30, 2, "NORMAL", lambda *_: None
        )
        await inbox.open()
        assert inbox.offer(packets(5)) == 5
        await inbox.flush(GUARD_S)
        assert inbox.metrics.received == 5
        assert inbox.metrics.dropped_total == 3
        await inbox.shutdown()

    run(scenario())
    assert stored_seqs(path) == [0, 1]


def test_a_packet_that_cannot_be_encoded_is_dropped_and_the_rest_of_its_batch_stored(
    tmp_path: Path,
) -> None:
    """`put` encodes a batch in one pass; one packet the codec refuses (NaN) sends it through
    the packets one by one: that one is dropped as not_portable, the others stored in order."""
    path = tmp_path / "q.db"
    batch = packets(5)
    batch[2] = StreamPacket.new("sensor", "s", 2, {"n": float("nan")})

    async def scenario() -> None:
        inbox = await durable(path)
        assert isinstance(inbox, DurableInbox)
        await inbox.put(batch)
        assert inbox.metrics.dropped == {"not_portable": 1}
        await closed(inbox)

    run(scenario())
    assert stored_seqs(path) == [0, 1, 3, 4]
