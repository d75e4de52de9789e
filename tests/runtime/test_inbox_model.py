"""A durable inbox against a plain model of what it must hold (hypothesis, stateful): puts,
takes, settles with some packets parked, a batch given back, requeues of parked packets, clean
restarts and crashes (the files copied as a `kill -9` leaves them, opened as the inbox from
then on). After every step the inbox's counts, the store file's rows (in order) and its parked
table agree with the model, and every open replays what the model says, reporting nothing
lost. Below the inbox, tests/runtime/test_store_damage_model.py drives the store itself
through damage.

Every call into the inbox goes through `Adapter`: the inbox's take/settle/give-back interface is
being reshaped (a batch object), and this is the one place to follow it."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from schnitzel.contract.codec import decode_packet
from schnitzel.contract.packet import StreamPacket
from schnitzel.durable.ledger import LEDGER_SUFFIX
from schnitzel.durable.parking import Selection
from schnitzel.durable.rows import live_packets
from schnitzel.runtime.durable_inbox import DurableInbox
from schnitzel.runtime.inbox import InFlight
from schnitzel.runtime.inbox_protocol import Batch
from schnitzel.runtime.metrics import NodeMetrics

NO_SUCH_PARKED = Selection(ids=(1 << 62,))
"""Drops nothing: a request that returns once a commit wrote everything queued before it."""
WINDOW = 8


class Adapter:
    """The durable inbox as the model drives it: packets named by their `seq`."""

    def __init__(self, path: Path, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.inbox = DurableInbox(
            WINDOW, "block", NodeMetrics(), InFlight(), path, 1 << 30, None, "NORMAL", _quiet
        )
        self.batch: Batch | None = None

    def run(self, coro: object) -> object:
        return self.loop.run_until_complete(coro)  # type: ignore[arg-type]

    def open(self) -> tuple[int, int, object]:
        """(replayed, parked at open, lost) of the open."""
        self.run(self.inbox.open())
        stats = self.inbox.stats
        return stats.replayed, stats.parked_at_open, stats.lost

    def put(self, seqs: list[int]) -> None:
        self.run(self.inbox.put([StreamPacket.new("sensor", "m", s, {"s": s}) for s in seqs]))

    def take(self, limit: int) -> list[int]:
        async def take() -> Batch:
            await asyncio.wait_for(self.inbox.wait_items(), 60)
            return self.inbox.take(limit)

        self.batch = self.run(take())  # type: ignore[assignment]
        assert self.batch is not None
        return [p.seq for p in self.batch.packets]

    def settle(self, parked: set[int]) -> None:
        assert self.batch is not None
        refused = [(p, f"refused {p.seq}") for p in self.batch.packets if p.seq in parked]
        self.batch.settle(None, None, refused or None)
        self.batch = None
        self.sync()

    def give_back(self) -> None:
        if self.batch is not None:
            self.batch.give_back()
        self.batch = None

    def requeue_all(self) -> int:
        done = self.run(self.inbox.change_parked("requeue", Selection(everything=True)))
        return done.requeued  # type: ignore[attr-defined]

    def sync(self) -> None:
        """Wait until a commit wrote everything queued (deletes, parks)."""
        self.run(self.inbox.change_parked("drop", NO_SUCH_PARKED))

    def depth(self) -> int:
        return self.inbox.depth

    def parked_count(self) -> int:
        return self.inbox.parked_count

    def shutdown(self) -> None:
        self.run(self.inbox.shutdown())


def _quiet(level: str, message: str) -> None:
    pass


def stored(path: Path) -> tuple[list[int], list[int]]:
    """(packet seqs in the packets table in store order, packet seqs parked in parked order)."""
    db = sqlite3.connect(path)
    try:
        rows = [(body,) for _seq, _at, body in live_packets(db)]
        parked = db.execute("SELECT body FROM parked ORDER BY id").fetchall()
    finally:
        db.close()
    return [decode_packet(b).seq for (b,) in rows], [decode_packet(b).seq for (b,) in parked]


class InboxModel(RuleBasedStateMachine):
    """`backlog`: packet seqs in the order the node must take them; `taken`: the batch the
    node holds; `parked`: packet seqs in the parked table, oldest first."""

    @initialize()
    def open_inbox(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.dirs = [Path(tempfile.mkdtemp(prefix="schnitzel-inbox-model-"))]
        self.path = self.dirs[0] / "in.db"
        self.adapter = Adapter(self.path, self.loop)
        assert self.adapter.open() == (0, 0, None)
        self.backlog: list[int] = []
        self.taken: list[int] = []
        self.parked: list[int] = []
        self.next_seq = 0
        self.crashes = 0

    def teardown(self) -> None:
        self.adapter.shutdown()
        self.loop.close()
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)

    @rule(n=st.integers(1, 12))
    def put(self, n: int) -> None:
        seqs = list(range(self.next_seq, self.next_seq + n))
        self.adapter.put(seqs)
        self.backlog += seqs
        self.next_seq += n

    @precondition(lambda self: not self.taken)
    @rule(limit=st.integers(1, 10))
    def take(self, limit: int) -> None:
        if not self.backlog:
            return
        got = self.adapter.take(limit)
        assert got and got == self.backlog[: len(got)]
        self.taken, self.backlog = got, self.backlog[len(got) :]

    @precondition(lambda self: bool(self.taken))
    @rule(data=st.data())
    def settle(self, data: st.DataObject) -> None:
        refused = data.draw(st.sets(st.sampled_from(self.taken)))
        self.adapter.settle(refused)
        self.parked += [s for s in self.taken if s in refused]
        self.taken = []

    @precondition(lambda self: bool(self.taken))
    @rule()
    def give_back(self) -> None:
        self.adapter.give_back()
        self.backlog = self.taken + self.backlog
        self.taken = []

    @precondition(lambda self: bool(self.parked))
    @rule()
    def requeue(self) -> None:
        assert self.adapter.requeue_all() == len(self.parked)
        self.backlog += self.parked
        self.parked = []

    @rule()
    def restart(self) -> None:
        """A clean stop and start: the batch the node held is taken first again."""
        self.adapter.shutdown()
        self._open(self.path)

    @precondition(lambda self: self.crashes < 3)
    @rule()
    def crash(self) -> None:
        """The files as a kill -9 leaves them (nothing committing: every step waits for its
        commits), opened in another place."""
        self.crashes += 1
        self.dirs.append(Path(tempfile.mkdtemp(prefix="schnitzel-inbox-model-")))
        target = self.dirs[-1] / "in.db"
        for suffix in ("", "-wal", "-shm", LEDGER_SUFFIX):
            source = self.path.with_name(self.path.name + suffix)
            if source.exists():
                shutil.copyfile(source, target.with_name(target.name + suffix))
        self.adapter.shutdown()
        self._open(target)

    def _open(self, path: Path) -> None:
        self.path = path
        self.adapter = Adapter(path, self.loop)
        self.backlog = self.taken + self.backlog
        self.taken = []
        assert self.adapter.open() == (len(self.backlog), len(self.parked), None)

    @invariant()
    def inbox_file_and_model_agree(self) -> None:
        if not hasattr(self, "adapter"):
            return
        in_file, parked = stored(self.path)
        assert in_file == self.taken + self.backlog
        assert parked == self.parked
        assert self.adapter.depth() == len(self.backlog)
        assert self.adapter.parked_count() == len(self.parked)


InboxModel.TestCase.settings = settings(max_examples=20, stateful_step_count=30, deadline=None)
test_the_inbox_holds_what_the_model_holds = InboxModel.TestCase
