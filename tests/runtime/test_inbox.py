"""Inbox overflow policies, fair blocking and the in-flight count that ends a graph."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable
from typing import Any

import pytest

from schnitzel.contract.packet import StreamPacket
from schnitzel.runtime.inbox import Inbox, InFlight
from schnitzel.runtime.metrics import NodeMetrics

GUARD_S = 60.0
"""Hang guard only: every awaited step here completes without any real waiting."""


def batch(n: int, start: int = 0, source: str = "s") -> list[StreamPacket]:
    return [StreamPacket.new("sensor", source, seq) for seq in range(start, start + n)]


def seqs(packets: Iterable[StreamPacket]) -> list[int]:
    return [packet.seq for packet in packets]


def make_inbox(capacity: int, overflow: str = "block") -> Inbox:
    return Inbox(capacity, overflow, NodeMetrics(), InFlight())


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, GUARD_S))


async def one_loop_step() -> None:
    """Let every ready task run up to its next await (a scheduling step, not a timed wait)."""
    await asyncio.sleep(0)


def test_block_takes_what_fits_and_returns_the_index_of_the_first_packet_not_taken() -> None:
    inbox = make_inbox(3)
    packets = batch(5)
    assert inbox.offer(packets) == 3
    assert inbox.metrics.received == 3  # the other two arrive when the producer retries
    assert inbox.in_flight.count == 3
    assert inbox.offer(packets, 3) == 3  # still full: nothing taken, nothing counted
    assert inbox.metrics.received == 3
    assert seqs(inbox.take(2)) == [0, 1]
    assert inbox.offer(packets, 3) == 5
    assert inbox.metrics.received == 5
    assert seqs(inbox.take(10)) == [2, 3, 4]
    assert inbox.metrics.dropped == {}


def test_drop_new_keeps_the_oldest_and_counts_the_rest_as_inbox_full() -> None:
    inbox = make_inbox(3, "drop_new")
    assert inbox.offer(batch(2)) == 2
    assert inbox.offer(batch(3, start=2)) == 3  # drop policies always take the whole batch
    assert seqs(inbox.take(10)) == [0, 1, 2]
    assert inbox.metrics.dropped == {"inbox_full": 2}
    assert inbox.metrics.received == 5
    assert inbox.in_flight.count == 3


def test_drop_oldest_keeps_the_freshest_and_counts_the_displaced() -> None:
    inbox = make_inbox(3, "drop_oldest")
    inbox.offer(batch(2))
    assert inbox.offer(batch(2, start=2)) == 2  # the whole batch is taken
    assert seqs(inbox.take(10)) == [1, 2, 3]
    assert inbox.metrics.dropped == {"displaced": 1}
    assert inbox.metrics.received == 4
    assert inbox.in_flight.count == 3


def test_drop_oldest_keeps_the_freshest_of_a_batch_larger_than_the_inbox() -> None:
    inbox = make_inbox(3, "drop_oldest")
    inbox.offer(batch(2))
    assert inbox.offer(batch(5, start=2)) == 5
    assert seqs(inbox.take(10)) == [4, 5, 6]
    assert inbox.metrics.dropped == {"displaced": 4}
    assert inbox.metrics.received == 7
    assert inbox.in_flight.count == 3


def test_force_queues_beyond_capacity() -> None:
    inbox = make_inbox(2)
    assert inbox.offer(batch(5), force=True) == 5
    assert len(inbox) == 5
    assert inbox.in_flight.count == 5
    assert inbox.metrics.depth_max == 5
    assert inbox.metrics.dropped == {}


def test_take_returns_packets_oldest_first_up_to_the_limit() -> None:
    inbox = make_inbox(10)
    inbox.offer(batch(3))
    inbox.offer(batch(2, start=3))
    assert seqs(inbox.take(2)) == [0, 1]
    assert seqs(inbox.take(10)) == [2, 3, 4]
    assert inbox.take(10).packets == []


def test_freed_space_goes_to_the_producer_first_in_line_not_to_a_newcomer() -> None:
    async def scenario() -> None:
        inbox = make_inbox(1)
        inbox.offer(batch(1, source="filler"))
        waiting = asyncio.create_task(inbox.put(batch(1, source="first")))
        await one_loop_step()
        assert not waiting.done()
        assert seqs(inbox.take(1)) == [0]
        # the slot is free, but "first" waits for it: a newcomer must queue behind
        assert inbox.offer(batch(1, source="late"), newcomer=True) == 0
        await waiting
        assert [p.source_id for p in inbox.take(1)] == ["first"]

    run(scenario())


def test_closing_an_inbox_releases_producers_waiting_in_line() -> None:
    async def scenario() -> None:
        inbox = make_inbox(1)
        inbox.offer(batch(1))
        waiting = [asyncio.create_task(inbox.put(batch(2, start=1))) for _ in range(2)]
        await one_loop_step()
        inbox.close()
        await asyncio.wait_for(asyncio.gather(*waiting), GUARD_S)
        assert inbox.metrics.dropped == {"node_failed": 4}

    run(scenario())


def test_put_on_a_full_block_inbox_waits_for_take_and_then_completes() -> None:
    async def scenario() -> None:
        inbox = make_inbox(2)
        inbox.offer(batch(2))
        put = asyncio.create_task(inbox.put(batch(2, start=2)))
        await one_loop_step()
        assert not put.done()
        assert seqs(inbox.take(1)) == [0]
        await one_loop_step()
        assert not put.done()  # one slot freed, two packets to place
        assert seqs(inbox.take(2)) == [1, 2]
        await put
        assert seqs(inbox.take(10)) == [3]
        assert inbox.metrics.received == 4

    run(scenario())


def test_blocked_producers_on_a_full_inbox_alternate_and_neither_starves() -> None:
    rounds = 4
    taken: list[str] = []

    async def scenario() -> None:
        inbox = make_inbox(1)
        inbox.offer(batch(1, source="filler"))

        async def producer(name: str) -> None:
            for seq in range(rounds):
                await inbox.put(batch(1, start=seq, source=name))

        async def consumer() -> None:
            for _ in range(2 * rounds + 1):
                await inbox.wait_items()
                taken.extend(packet.source_id for packet in inbox.take(1))

        # both producers block on the full inbox before the consumer takes anything
        tasks = [asyncio.create_task(producer(name)) for name in ("a", "b")]
        tasks.append(asyncio.create_task(consumer()))
        await asyncio.gather(*tasks)

    run(scenario())
    order = taken[1:]
    assert sorted(order) == ["a"] * rounds + ["b"] * rounds
    for end in range(1, len(order) + 1):  # every prefix is balanced: nobody overtakes
        prefix = order[:end]
        assert abs(prefix.count("a") - prefix.count("b")) <= 1, order


def test_idle_is_set_only_when_the_count_is_zero_after_all_sources_finished() -> None:
    in_flight = InFlight()
    in_flight.sources_running = 1
    inbox = Inbox(10, "block", NodeMetrics(), in_flight)
    inbox.offer(batch(3))
    inbox.take(10)
    in_flight.retire(2)
    assert not in_flight.idle.is_set()
    in_flight.retire(1)
    assert in_flight.count == 0
    assert not in_flight.idle.is_set()  # a source may still produce
    in_flight.source_finished()
    assert in_flight.idle.is_set()


def test_idle_is_set_by_the_last_retire_when_sources_finished_first() -> None:
    in_flight = InFlight()
    in_flight.sources_running = 1
    inbox = Inbox(10, "block", NodeMetrics(), in_flight)
    inbox.offer(batch(2))
    in_flight.source_finished()
    assert not in_flight.idle.is_set()  # two packets still queued
    inbox.take(10)
    in_flight.retire(2)
    assert in_flight.idle.is_set()


@pytest.mark.parametrize("arriving", [1, 3])
def test_drop_oldest_adds_before_it_retires_so_a_full_inbox_never_looks_idle(
    arriving: int,
) -> None:
    in_flight = InFlight()  # no source running: a count touching zero would set idle
    inbox = Inbox(1, "drop_oldest", NodeMetrics(), in_flight)
    inbox.offer(batch(1))
    inbox.offer(batch(arriving, start=1))
    assert in_flight.count == len(inbox) == 1
    assert not in_flight.idle.is_set()


def test_offering_into_a_closed_inbox_drops_everything_as_node_failed() -> None:
    async def scenario() -> None:
        inbox = make_inbox(1)
        inbox.close()
        assert inbox.offer(batch(3)) == 3
        await inbox.put(batch(2, start=3))  # never waits: the packets are lost, and counted
        assert len(inbox) == 0
        assert inbox.metrics.dropped == {"node_failed": 5}
        assert inbox.metrics.received == 5
        assert inbox.in_flight.count == 0

    run(scenario())


def test_abandon_counts_shutdown_drops_and_retires_them() -> None:
    inbox = make_inbox(10)
    inbox.offer(batch(3))
    assert inbox.abandon() == 3
    assert len(inbox) == 0
    assert inbox.metrics.dropped == {"shutdown": 3}
    assert inbox.in_flight.count == 0
    assert inbox.in_flight.idle.is_set()
    assert inbox.abandon() == 0
    assert inbox.metrics.dropped == {"shutdown": 3}


def test_depth_max_tracks_the_deepest_the_inbox_has_been() -> None:
    inbox = make_inbox(10)
    inbox.offer(batch(3))
    inbox.take(2)
    inbox.offer(batch(1, start=3))
    assert len(inbox) == 2
    assert inbox.metrics.depth_max == 3
    inbox.offer(batch(4, start=4))
    assert inbox.metrics.depth_max == 6
    inbox.take(10)
    assert inbox.metrics.depth_max == 6
