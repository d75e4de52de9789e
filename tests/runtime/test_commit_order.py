"""`CommitOrder` alone, with real futures on a real loop: batches whose outputs wait for their
commits end in the order they were handed over, whatever order the commits finish in; one
lost commit ends it and everything after as lost; a producer waits at the bound."""

from __future__ import annotations

import asyncio
from functools import partial

from hypothesis import given, settings
from hypothesis import strategies as st

from schnitzel.runtime.commit_order import CommitOrder


async def settle_pending_callbacks() -> None:
    """Let the callbacks the futures scheduled run (each hop is one loop step)."""
    for _ in range(3):
        await asyncio.sleep(0)


def test_batches_end_in_order_however_their_commits_finish() -> None:
    async def scenario() -> list[str]:
        loop = asyncio.get_running_loop()
        order = CommitOrder()
        ended: list[str] = []
        first, second, third = (loop.create_future() for _ in range(3))
        order.add([first], lambda: ended.append("a"), lambda: ended.append("a lost"))
        order.add([second, third], lambda: ended.append("b"), lambda: ended.append("b lost"))
        order.add(None, lambda: ended.append("c"), lambda: ended.append("c lost"))
        third.set_result(True)
        second.set_result(True)
        await settle_pending_callbacks()
        assert ended == [] and len(order) == 3  # all wait for the first commit
        first.set_result(True)
        await settle_pending_callbacks()
        assert len(order) == 0
        return ended

    assert asyncio.run(scenario()) == ["a", "b", "c"]


def test_a_batch_with_nothing_to_wait_for_ends_at_once_when_none_is_before_it() -> None:
    async def scenario() -> list[str]:
        order = CommitOrder()
        ended: list[str] = []
        order.add(None, lambda: ended.append("a"), lambda: ended.append("a lost"))
        return ended

    assert asyncio.run(scenario()) == ["a"]


def test_a_lost_commit_ends_its_batch_and_every_later_one_as_lost() -> None:
    async def scenario() -> list[str]:
        loop = asyncio.get_running_loop()
        order = CommitOrder()
        ended: list[str] = []
        commits = [loop.create_future() for _ in range(3)]
        for name, commit in zip("abc", commits, strict=True):
            order.add([commit], partial(ended.append, name), partial(ended.append, f"{name} lost"))
        commits[0].set_result(True)
        commits[1].set_result(False)  # the store closed before committing it
        commits[2].set_result(True)
        await settle_pending_callbacks()
        return ended

    assert asyncio.run(scenario()) == ["a", "b lost", "c lost"]


def test_a_producer_at_the_bound_waits_until_the_oldest_batch_ended() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        order = CommitOrder()
        commits = [loop.create_future() for _ in range(2)]
        for commit in commits:
            order.add([commit], lambda: None, lambda: None)
        waiting = asyncio.ensure_future(order.wait_below(2))
        await settle_pending_callbacks()
        assert not waiting.done()
        commits[1].set_result(True)  # the newer one: the oldest still waits
        await settle_pending_callbacks()
        assert not waiting.done()
        commits[0].set_result(True)
        await asyncio.wait_for(waiting, 60)  # a guard against a hang only
        assert len(order) == 0

    asyncio.run(scenario())


def test_settled_batches_tell_the_checkpoint_tracker() -> None:
    async def scenario() -> int:
        loop = asyncio.get_running_loop()
        order = CommitOrder()
        told = 0

        def tell() -> None:
            nonlocal told
            told += 1

        order.on_settled = tell
        commit = loop.create_future()
        order.add([commit], lambda: None, lambda: None)
        commit.set_result(True)
        await settle_pending_callbacks()
        return told

    assert asyncio.run(scenario()) == 1


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_interleaving_of_adds_and_commits_ends_each_batch_once_in_order(
    data: st.DataObject,
) -> None:
    """A model: entries end in the order added, each once, only after its own commits and
    every earlier entry; lost when one of its commits failed or an earlier entry was lost."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        order = CommitOrder()
        ended: list[tuple[int, bool]] = []
        commits: list[list[asyncio.Future[bool]]] = []
        open_futures: list[asyncio.Future[bool]] = []
        for _step in range(data.draw(st.integers(1, 30))):
            if open_futures and data.draw(st.booleans()):
                future = open_futures.pop(data.draw(st.integers(0, len(open_futures) - 1)))
                future.set_result(data.draw(st.sampled_from([True, True, True, False])))
            else:
                index = len(commits)
                mine = [loop.create_future() for _ in range(data.draw(st.integers(0, 3)))]
                commits.append(mine)
                open_futures.extend(mine)
                order.add(
                    mine or None,
                    partial(ended.append, (index, True)),
                    partial(ended.append, (index, False)),
                )
            await settle_pending_callbacks()
            expected: list[tuple[int, bool]] = []
            lost = False
            for index, mine in enumerate(commits):
                if not all(f.done() for f in mine):
                    break
                lost = lost or not all(f.result() for f in mine)
                expected.append((index, not lost))
            assert ended == expected
            assert len(order) == len(commits) - len(expected)

    asyncio.run(scenario())
