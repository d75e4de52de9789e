"""The durable store against a model of what it should hold (hypothesis, stateful): rows
added, read back in order, settled, moved out (to a table of the test's own, and parked
through the parking module's commits), requeued and dropped from parking, changed on disk
(in the backlog or while parked), and the store closed and opened again. After every step
the file, the ledger and the model agree, and an open never reports a loss that did not
happen: parked rows are neither owed nor lost, requeued rows are owed again.

The packets of one commit share a batch row (schnitzel/durable/rows.py): a byte changed in it
damages every packet it still holds, and packets settle out of it one by one."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import zlib
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from schnitzel.durable.ledger import Ledger, Owed
from schnitzel.durable.parking import ParkingChanges, Selection
from schnitzel.durable.rows import live_packets, row_checksum
from schnitzel.durable.store import DurableStore, NewRow
from schnitzel.runtime.durable_commits import commit_on_store


def commit(
    store: DurableStore, rows: list[NewRow], deletes: list[tuple[int, int]], c: ParkingChanges
) -> None:
    """As the durable inbox commits with parking changes (schnitzel/runtime/durable_inbox.py)."""
    commit_on_store(store, rows, deletes, 0, c)


class StoreModel(RuleBasedStateMachine):
    """`held`: seq -> body the store must hold; `moved`: seqs moved out to a table of the
    test's own; `parked`: packet seq -> body in the parked table; `changed`: seqs whose body
    was changed on disk (to be quarantined when read, never returned)."""

    @initialize()
    def open_store(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="schnitzel-model-"))
        self.path = self.dir / "out.db"
        self.store = DurableStore(self.path, "NORMAL")
        assert self.store.open().count == 0
        self.held: dict[int, bytes] = {}
        self.moved: set[int] = set()
        self.parked: dict[int, bytes] = {}
        self.changed: set[int] = set()
        self.quarantined: set[int] = set()
        self.next_seq = 1
        self.cursor = 0
        self.read_seqs: list[int] = []
        self.row_of: dict[int, int] = {}
        """Packet seq -> the first seq of its row, for packets in batch rows."""

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir)

    @rule(n=st.integers(1, 20))
    def add(self, n: int) -> None:
        self.store.commit(self._new_rows(n), [], 0)

    @rule(limit=st.integers(1, 15))
    def read(self, limit: int) -> None:
        good, damaged = self.store.read(limit)
        expected = sorted(seq for seq in self.held if seq > self.cursor)[:limit]
        got = sorted([seq for seq, _a, _b in good] + [seq for seq, *_ in damaged])
        assert got == expected
        assert {seq for seq, *_ in damaged} == self.changed & set(expected)
        for seq, _at, body in good:
            assert body == self.held[seq]
        for seq, *_ in damaged:
            del self.held[seq]
            self.changed.discard(seq)
            self.quarantined.add(seq)
        if expected:
            self.cursor = expected[-1]
        self.read_seqs += [seq for seq, _a, _b in good]

    @rule(data=st.data())
    def settle(self, data: st.DataObject) -> None:
        if not self.read_seqs:
            return
        done = data.draw(st.lists(st.sampled_from(self.read_seqs), unique=True, max_size=10))
        self.store.commit([], [(seq, seq) for seq in sorted(done)], 0)
        for seq in done:
            self.held.pop(seq, None)
            self.read_seqs.remove(seq)

    @rule(limit=st.integers(1, 15))
    def displace(self, limit: int) -> None:
        """Overflow `drop_oldest` on disk: the next `limit` packets not yet read go, whole
        rows or packets cut out of them, damaged or not; how many and their bytes said."""
        gone = sorted(seq for seq in self.held if seq > self.cursor)[:limit]
        count, size, runs = self.store.displace(limit)
        assert (count, size) == (len(gone), sum(self._size(seq) for seq in gone))
        assert [seq for a, b in runs for seq in range(a, b + 1)] == gone
        for seq in gone:
            del self.held[seq]
            self.changed.discard(seq)
        if gone:
            self.cursor = gone[-1]

    @rule(data=st.data())
    def move_out(self, data: st.DataObject) -> None:
        if not self.held:
            return
        seqs = data.draw(st.lists(st.sampled_from(sorted(self.held)), unique=True, max_size=5))
        if not seqs:
            return

        def copy(db: sqlite3.Connection, runs: list[tuple[int, int]]) -> None:
            db.execute("CREATE TABLE IF NOT EXISTS moved (seq INTEGER PRIMARY KEY, body BLOB)")
            found = self.store.packets([s for a, b in runs for s in range(a, b + 1)])
            db.executemany(
                "INSERT INTO moved VALUES (?, ?)",
                [(s, body) for s, (_at, body, _c) in found.items()],
            )

        self.store.move_out(seqs, copy)
        for seq in seqs:
            del self.held[seq]
            self.moved.add(seq)
            self.changed.discard(seq)
            if seq in self.read_seqs:
                self.read_seqs.remove(seq)

    @rule(data=st.data(), n=st.integers(0, 5))
    def park(self, data: st.DataObject, n: int) -> None:
        """Rows the node read and refused, parked in a commit that also adds `n` rows."""
        if not self.read_seqs:
            return
        seqs = data.draw(st.lists(st.sampled_from(self.read_seqs), unique=True, max_size=5))
        rows = self._new_rows(n)
        changes = ParkingChanges(park=[(seq, 1.0, "refused", f"p{seq}") for seq in seqs])
        commit(self.store, rows, [(seq, seq) for seq in sorted(seqs)], changes)
        assert changes.parked == len(seqs)
        for seq in seqs:
            self.parked[seq] = self.held.pop(seq)
            self.read_seqs.remove(seq)

    @rule(data=st.data(), n=st.integers(0, 5))
    def requeue(self, data: st.DataObject, n: int) -> None:
        """Parked rows back to the end of the backlog, as new rows after `n` new ones."""
        if not self.parked:
            return
        chosen = data.draw(st.lists(st.sampled_from(sorted(self.parked)), unique=True, min_size=1))
        ids = self._parked_ids(chosen)
        rows = self._new_rows(n)
        changes = ParkingChanges(
            requeue=Selection(ids=tuple(ids)),
            requeue_base_seq=self.next_seq,
            requeue_room=len(ids),
        )
        commit(self.store, rows, [], changes)
        assert changes.requeued == len(chosen)
        for packet_seq in sorted(chosen, key=lambda s: ids[chosen.index(s)]):
            self.held[self.next_seq] = self.parked.pop(packet_seq)
            if packet_seq in self.changed:  # its checksum came along: caught when read
                self.changed.discard(packet_seq)
                self.changed.add(self.next_seq)
            self.next_seq += 1

    @rule(data=st.data())
    def drop_parked(self, data: st.DataObject) -> None:
        if not self.parked:
            return
        chosen = data.draw(st.lists(st.sampled_from(sorted(self.parked)), unique=True, min_size=1))
        changes = ParkingChanges(drop=Selection(ids=tuple(self._parked_ids(chosen))))
        commit(self.store, [], [], changes)
        assert changes.dropped == len(chosen)
        for seq in chosen:
            del self.parked[seq]
            self.changed.discard(seq)

    @rule(data=st.data())
    def change_while_parked(self, data: st.DataObject) -> None:
        if not self.parked:
            return
        seq = data.draw(st.sampled_from(sorted(self.parked)))
        db = self.store._db
        assert db is not None
        db.execute("UPDATE parked SET body = ? WHERE packet_seq = ?", (b'{"n":-2}', seq))
        self.changed.add(seq)

    def _new_rows(self, n: int) -> list[NewRow]:
        """`n` new packets, one batch row (n <= 20) when more than one."""
        bodies = {seq: f'{{"n":{seq}}}'.encode() for seq in range(self.next_seq, self.next_seq + n)}
        self.held.update(bodies)
        if n > 1:
            self.row_of.update((seq, self.next_seq) for seq in bodies)
        self.next_seq += n
        return [(seq, 0.0, b) for seq, b in bodies.items()]

    def _size(self, seq: int) -> int:
        """The size the store counts for packet `seq`: its encoded length as it is on disk
        (a one-packet row changed on disk holds another body, of 8 bytes)."""
        return 8 if seq in self.changed and seq not in self.row_of else len(self.held[seq])

    def _parked_ids(self, packet_seqs: list[int]) -> list[int]:
        """The parked ids of these packet seqs, in the order given."""
        assert self.store._db is not None
        ids = dict(self.store._db.execute("SELECT packet_seq, id FROM parked").fetchall())
        return [ids[seq] for seq in packet_seqs]

    @rule(data=st.data())
    def change_on_disk(self, data: st.DataObject) -> None:
        """A row none of whose packets was read back yet (a row is checked once, when its
        first packets are read) changed on disk: every packet it holds is damaged."""
        unread = sorted(seq for seq in self.held if self.row_of.get(seq, seq) > self.cursor)
        if not unread:
            return
        seq = data.draw(st.sampled_from(unread))
        db = self.store._db
        assert db is not None
        first = self.row_of.get(seq, seq)
        if first == seq and seq not in self.row_of:
            db.execute("UPDATE packets SET body = ? WHERE seq = ?", (b'{"n":-1}', seq))
            self.changed.add(seq)
            return
        (body,) = db.execute("SELECT body FROM packets WHERE seq = ?", (first,)).fetchone()
        changed = bytes(body[:-1]) + b"|"  # one byte of the row: all it holds is damaged
        db.execute("UPDATE packets SET body = ? WHERE seq = ?", (changed, first))
        self.changed.update(s for s in self.held if self.row_of.get(s) == first)

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = DurableStore(self.path, "NORMAL")
        backlog = self.store.open()
        assert backlog.lost is None and backlog.note == ""
        assert backlog.count == len(self.held)
        assert backlog.bytes == sum(self._size(seq) for seq in self.held)
        assert backlog.next_seq == self.next_seq
        self.cursor = 0
        self.read_seqs = []

    @invariant()
    def file_ledger_and_model_agree(self) -> None:
        db = self.store._db
        assert db is not None
        in_file = [seq for seq, _at, _body in live_packets(db)]
        assert in_file == sorted(self.held)
        assert Owed((s, s) for s in sorted(self.held)).runs() == self.store._owed.runs()
        on_disk = Ledger(self.store._ledger.path).read()  # type: ignore[union-attr]
        assert on_disk is not None and on_disk.pending is None
        assert on_disk.runs == self.store._owed.runs()
        assert on_disk.owed_count == len(self.held)
        moved = set()
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'moved'").fetchone():
            moved = {seq for (seq,) in db.execute("SELECT seq FROM moved")}
        assert moved == self.moved
        parked = db.execute("SELECT packet_seq, body, checksum FROM parked").fetchall()
        assert {seq for seq, _b, _c in parked} == set(self.parked)
        for seq, body, stored in parked:
            assert (zlib.adler32(body) == stored) == (seq not in self.changed)
        kept = db.execute("SELECT seq, coalesce(last, seq), packets FROM quarantine").fetchall()
        assert sum(n for _seq, _last, n in kept) == len(self.quarantined)
        assert all(any(a <= s <= b for a, b, _n in kept) for s in self.quarantined)
        rows = db.execute("SELECT seq, coalesce(last, seq), body, checksum, sizes FROM packets")
        for first, last, body, stored, sizes in rows:
            damaged = {s for s in self.held if first <= s <= last} & self.changed
            assert (row_checksum(body, sizes) == stored) == (not damaged)


StoreModel.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
test_the_store_holds_what_the_model_holds = StoreModel.TestCase
