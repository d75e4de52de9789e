"""A durable inbox's blob refs (runtime/held_refs.py `RefCounts`) follow its packets out of the
store by every way they leave it: displaced on disk by `drop_oldest`, and quarantined when read
back damaged. A ref left behind pins its blob for the rest of the run (a blob store keeps what
`refs_held()` names)."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

from schnitzel.runtime.durable_inbox import DurableInbox
from schnitzel.runtime.inbox import InFlight
from schnitzel.runtime.metrics import NodeMetrics
from tests.runtime.test_held_refs import event, held


def make_inbox(path: Path, overflow: str = "block", max_packets: int | None = None) -> DurableInbox:
    return DurableInbox(
        2, overflow, NodeMetrics(), InFlight(), path, 1 << 30, max_packets, "NORMAL", quiet
    )


def quiet(_level: str, _message: str) -> None:
    """Events go nowhere."""


async def displaced_on_disk(path: Path) -> dict[str, int]:
    inbox = make_inbox(path, "drop_oldest", max_packets=4)
    await inbox.open()
    await inbox.put([event(0, "a"), event(1, "b")])  # the memory window
    await inbox.put([event(2, "c"), event(3, "d")])  # on disk only
    held_batch = inbox.take(2)  # the node holds a and b: not displaced
    await inbox.put([event(4, "e"), event(5, "f")])  # c and d make room
    assert inbox.metrics.dropped == {"displaced": 2}
    refs = held(inbox)
    held_batch.settle()
    await inbox.shutdown()
    return refs


def test_packets_displaced_on_disk_no_longer_hold_their_blobs(tmp_path: Path) -> None:
    assert asyncio.run(displaced_on_disk(tmp_path / "out.db")) == {"a": 1, "b": 1, "e": 1, "f": 1}


async def fill(path: Path) -> None:
    inbox = make_inbox(path)
    await inbox.open()
    await inbox.put([event(0, "a"), event(1, "b"), event(2, "c")])  # one batch row
    await inbox.shutdown()


async def quarantined(inbox: DurableInbox, n: int) -> None:
    while inbox.stats.rows_quarantined < n:
        await asyncio.sleep(0.01)


async def read_damaged(path: Path) -> tuple[dict[str, int], dict[str, int]]:
    inbox = make_inbox(path)
    await inbox.open()
    at_open = held(inbox)
    waiting = asyncio.create_task(inbox.wait_items())  # the backlog is read back
    await asyncio.wait_for(quarantined(inbox, 3), 60)  # the row is damaged: quarantined
    waiting.cancel()
    assert len(inbox) == 0
    refs = held(inbox)
    await inbox.shutdown()
    return at_open, refs


def test_packets_quarantined_when_read_back_no_longer_hold_their_blobs(tmp_path: Path) -> None:
    path = tmp_path / "out.db"
    asyncio.run(fill(path))
    with closing(sqlite3.connect(path)) as db:  # one byte of the row changed on disk
        db.execute("UPDATE packets SET body = CAST(replace(body, '\"n\":1', '\"n\":7') AS BLOB)")
        db.commit()
    at_open, after = asyncio.run(read_damaged(path))
    assert at_open == {"a": 1, "b": 1, "c": 1}  # a damaged row is held until it is read
    assert after == {}
