"""One model of what a durable store must hold, and the rules that drive it (hypothesis,
stateful), shared by two drivers: tests/runtime/test_store_model.py runs them as they are,
tests/runtime/test_store_damage_model.py adds crashes and damage on disk.

The rules: rows added (the packets of one commit share a batch row,
schnitzel/durable/rows.py), read back in order, settled, displaced (overflow `drop_oldest`),
moved out (to a table of the test's own), parked through the parking module's commits,
requeued and dropped from parking, changed on disk (in the backlog or while parked), a batch
row's `last` raised by hand while the store was stopped, and the store closed and opened
again. After every step the file, the ledger on disk and the model
agree (`file_ledger_and_model_agree`), and a clean reopen reports no loss and nothing it
could not check: parked rows are neither owed nor lost, requeued rows are owed again.

What the model says about damage: a byte changed in a batch row damages every packet it still
holds; the first read that meets the row quarantines all of them (even beyond its limit) as
one quarantine entry, never a part per read. A row whose `last` was raised is set aside whole
at the next open, as one entry too. Either entry takes exactly the packets the row still
held, and says which (`held`): never those settled out of it before."""

from __future__ import annotations

import copy
import shutil
import sqlite3
import tempfile
import zlib
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from schnitzel.durable.ledger import LEDGER_SUFFIX, Ledger, LedgerState, Owed
from schnitzel.durable.parking import ParkingChanges, Selection
from schnitzel.durable.quarantine_table import held_text
from schnitzel.durable.rows import live_packets, row_intact
from schnitzel.durable.store import DurableStore, NewRow, seq_runs
from schnitzel.runtime.durable_commits import commit_on_store

__all__ = ["State", "StoreRules", "body_of", "commit", "implied_owed"]


@dataclass
class State:
    """What the store file holds (the model's side of it)."""

    held: dict[int, bytes] = field(default_factory=dict)
    """seq -> body of the packets in `packets` (the backlog)."""
    parked: dict[int, bytes] = field(default_factory=dict)
    """packet seq -> body of the rows in `parked`."""
    moved: list[int] = field(default_factory=list)
    """Seqs moved out to the test's own table, once per move: the store does not know that
    table, so after an open that could not learn its seqs from a ledger of its own (missing
    or another store's) a seq moved out before may be used again (as by settled rows)."""
    quarantine: list[tuple[int, int, int, str]] = field(default_factory=list)
    """(first seq, last seq, packets, held) of each quarantine entry: one per damaged row or
    row set aside at open, `held` the seqs it took as runs."""
    changed: set[int] = field(default_factory=set)
    """Seqs (in `packets` or parked) whose body was changed on disk: never returned."""


def body_of(seq: int) -> bytes:
    return f'{{"n":{seq}}}'.encode()


def commit(
    store: DurableStore, rows: list[NewRow], deletes: list[tuple[int, int]], c: ParkingChanges
) -> None:
    """As the durable inbox commits with parking changes (schnitzel/runtime/durable_inbox.py)."""
    commit_on_store(store, rows, deletes, 0, c)


def implied_owed(ledger: LedgerState, present: set[int]) -> set[int]:
    """The rows an open takes `ledger` to owe, given the rows the file holds: a pending
    commit (the ledger's write after COMMIT failed, or COMMIT itself did) counts only if any
    of its rows are in the file, and then all of them must be."""
    assert ledger.runs is not None
    owed = {s for first, last in ledger.runs for s in range(first, last + 1)}
    if ledger.pending is not None:
        pending = set(range(ledger.pending[0], ledger.pending[1] + 1))
        if pending & present:
            assert pending <= present, "a commit half in the file"
        else:
            owed -= pending
    return owed


class StoreRules(RuleBasedStateMachine):
    """The shared rules; a driver's `@initialize` calls `start`."""

    def start(self, prefix: str) -> None:
        self.prefix = prefix
        self.dirs: list[Path] = []
        self.state = State()
        self.next_seq = 1
        self.row_of: dict[int, int] = {}
        """Packet seq -> the first seq of its batch row (packets of one commit share one)."""
        self.path = self._new_dir() / "out.db"
        self.store = DurableStore(self.path, "NORMAL")
        backlog = self.store.open()
        assert backlog.count == 0 and backlog.lost is None
        self._opened(clean=False)

    def _new_dir(self) -> Path:
        self.dirs.append(Path(tempfile.mkdtemp(prefix=self.prefix)))
        return self.dirs[-1]

    def _opened(self, clean: bool) -> None:
        """After an open (`clean`: after a clean close): the read cursor starts over."""
        self.cursor = 0
        self.read_seqs: list[int] = []

    def teardown(self) -> None:
        self.store.close()
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)

    # -- what a node does -------------------------------------------------------------------

    def _new_rows(self, n: int, times: int = 1) -> list[NewRow]:
        """`n` new packets, one batch row (n <= 20) when more than one."""
        rows = [(s, 0.0, body_of(s) * times) for s in range(self.next_seq, self.next_seq + n)]
        self.state.held.update((s, b) for s, _a, b in rows)
        for s, _a, _b in rows:  # a seq a lost commit had used is used again
            self.row_of.pop(s, None)
        if n > 1:
            self.row_of.update((s, self.next_seq) for s, _a, _b in rows)
        self.next_seq += n
        return rows

    @rule(n=st.integers(1, 20))
    def add(self, n: int) -> None:
        self.store.commit(self._new_rows(n), [], 0)

    @rule(limit=st.integers(1, 15))
    def read(self, limit: int) -> None:
        """The next `limit` packets, and every other packet still held by a damaged row
        among them: quarantined together, one entry per row."""
        state = self.state
        good, damaged = self.store.read(limit)
        window = sorted(s for s in state.held if s > self.cursor)[:limit]
        hit = {self.row_of.get(s, s) for s in window if s in state.changed}
        rest = [
            s
            for s in sorted(state.held)
            if s > self.cursor and s not in window and self.row_of.get(s) in hit
        ]
        expected = window + rest
        assert sorted([s for s, _a, _b in good] + [s for s, *_ in damaged]) == expected
        assert {s for s, *_ in damaged} == state.changed & set(expected)
        for s, _at, body in good:
            assert body == state.held[s]
        for row in sorted(hit):
            self._quarantined([s for s, *_ in damaged if self.row_of.get(s, s) == row])
        for s, *_ in damaged:
            del state.held[s]
            state.changed.discard(s)
        if expected:
            self.cursor = max(expected)
        self.read_seqs += [s for s, _a, _b in good]

    @rule(data=st.data())
    def settle(self, data: st.DataObject) -> None:
        if not self.read_seqs:
            return
        done = data.draw(st.lists(st.sampled_from(self.read_seqs), unique=True, max_size=10))
        self.store.commit([], [(s, s) for s in sorted(done)], 0)
        for s in done:
            self.state.held.pop(s, None)
            self.read_seqs.remove(s)

    @rule(limit=st.integers(1, 15))
    def displace(self, limit: int) -> None:
        """Overflow `drop_oldest` on disk: the next `limit` packets not yet read go, whole
        rows or packets cut out of them, damaged or not; how many and their bytes said."""
        state = self.state
        gone = sorted(s for s in state.held if s > self.cursor)[:limit]
        count, size, runs = self.store.displace(limit)
        assert (count, size) == (len(gone), sum(self._size(s) for s in gone))
        assert [s for a, b in runs for s in range(a, b + 1)] == gone
        for s in gone:
            del state.held[s]
            state.changed.discard(s)
        if gone:
            self.cursor = gone[-1]

    @rule(data=st.data())
    def move_out(self, data: st.DataObject) -> None:
        state = self.state
        if not state.held:
            return
        seqs = data.draw(st.lists(st.sampled_from(sorted(state.held)), unique=True, max_size=5))
        if not seqs:
            return

        def copy_out(db: sqlite3.Connection, runs: list[tuple[int, int]]) -> None:
            db.execute(
                "CREATE TABLE IF NOT EXISTS moved (id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, "
                "body BLOB)"
            )
            found = self.store.packets([s for a, b in runs for s in range(a, b + 1)])
            db.executemany(
                "INSERT INTO moved (seq, body) VALUES (?, ?)",
                [(s, body) for s, (_at, body, _c) in found.items()],
            )

        self.store.move_out(seqs, copy_out)
        for s in seqs:
            del state.held[s]
            state.moved.append(s)
            state.changed.discard(s)
            if s in self.read_seqs:
                self.read_seqs.remove(s)

    @rule(data=st.data(), n=st.integers(0, 5))
    def park(self, data: st.DataObject, n: int) -> None:
        """Rows the node read and refused, parked in a commit that also adds `n` rows."""
        if not self.read_seqs:
            return
        seqs = data.draw(st.lists(st.sampled_from(self.read_seqs), unique=True, max_size=5))
        rows = self._new_rows(n)
        changes = ParkingChanges(park=[(s, 1.0, "refused", f"p{s}") for s in seqs])
        commit(self.store, rows, [(s, s) for s in sorted(seqs)], changes)
        assert changes.parked == len(seqs)
        for s in seqs:
            self.state.parked[s] = self.state.held.pop(s)
            self.read_seqs.remove(s)

    @rule(data=st.data(), n=st.integers(0, 5))
    def requeue(self, data: st.DataObject, n: int) -> None:
        """Parked rows back to the end of the backlog, as new rows after `n` new ones."""
        state = self.state
        if not state.parked:
            return
        chosen = data.draw(st.lists(st.sampled_from(sorted(state.parked)), unique=True, min_size=1))
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
            state.held[self.next_seq] = state.parked.pop(packet_seq)
            self.row_of.pop(self.next_seq, None)  # a row of its own
            if packet_seq in state.changed:  # its checksum came along: caught when read
                state.changed.discard(packet_seq)
                state.changed.add(self.next_seq)
            self.next_seq += 1

    @rule(data=st.data())
    def drop_parked(self, data: st.DataObject) -> None:
        state = self.state
        if not state.parked:
            return
        chosen = data.draw(st.lists(st.sampled_from(sorted(state.parked)), unique=True, min_size=1))
        changes = ParkingChanges(drop=Selection(ids=tuple(self._parked_ids(chosen))))
        commit(self.store, [], [], changes)
        assert changes.dropped == len(chosen)
        for s in chosen:
            del state.parked[s]
            state.changed.discard(s)

    def _parked_ids(self, packet_seqs: list[int]) -> list[int]:
        """The parked ids of these packet seqs, in the order given."""
        ids = dict(
            self.store.query(lambda db: db.execute("SELECT packet_seq, id FROM parked").fetchall())
        )
        return [ids[s] for s in packet_seqs]

    def _size(self, seq: int) -> int:
        """The size the store counts for packet `seq`: its encoded length as it is on disk
        (a one-packet row changed on disk holds another body, of 8 bytes)."""
        state = self.state
        return 8 if seq in state.changed and seq not in self.row_of else len(state.held[seq])

    # -- damage a run meets -----------------------------------------------------------------

    @rule(data=st.data())
    def change_on_disk(self, data: st.DataObject) -> None:
        """One row's body changed on disk (a bit flipped in a page): quarantined when read.
        A row none of whose packets was read back yet (a row is checked once, when its first
        packets are read: delivery.md, damage that can still go unnoticed)."""
        unread = sorted(s for s in self.state.held if self.row_of.get(s, s) > self.cursor)
        if not unread:
            return
        s = data.draw(st.sampled_from(unread))
        first = self.row_of.get(s)
        if first is None:
            self.store.query(
                lambda db: db.execute("UPDATE packets SET body = ? WHERE seq = ?", (b'{"n":-1}', s))
            )
            self.state.changed.add(s)
            return

        def flip_last_byte(db: sqlite3.Connection) -> None:  # all the row holds is damaged
            (body,) = db.execute("SELECT body FROM packets WHERE seq = ?", (first,)).fetchone()
            db.execute("UPDATE packets SET body = ? WHERE seq = ?", (body[:-1] + b"|", first))

        self.store.query(flip_last_byte)
        self.state.changed.update(h for h in self.state.held if self.row_of.get(h) == first)

    @rule(data=st.data())
    def raise_last_by_hand(self, data: st.DataObject) -> None:
        """A batch row's `last` raised by hand while the store was stopped (its range no
        longer the packets it holds; some of them perhaps settled out of it before): the open
        sets it aside whole, taking exactly the packets it still held, its own seqs, so none
        is reported lost. A row changed on disk too is not trusted to know its sizes; its
        newlines count the same."""
        state = self.state
        rows = sorted({self.row_of[s] for s in state.held if s in self.row_of})
        if not rows:
            return
        first = data.draw(st.sampled_from(rows))
        taken = sorted(s for s in state.held if self.row_of.get(s) == first)
        self.store.close()
        with closing(sqlite3.connect(self.path)) as db:
            db.execute("UPDATE packets SET last = last + 1000 WHERE seq = ?", (first,))
            db.commit()
        self.store = DurableStore(self.path, "NORMAL")
        backlog = self.store.open()
        assert (backlog.set_aside, backlog.lost, backlog.note) == (len(taken), None, "")
        self._quarantined(taken)
        for s in taken:
            del state.held[s]
        assert backlog.count == len(state.held)
        self.reopen()  # what the open moved aside is checkpointed: the file alone holds it

    def _quarantined(self, seqs: list[int]) -> None:
        """The packets `seqs` of one row moved to the quarantine table as one entry."""
        self.state.quarantine.append((seqs[0], seqs[-1], len(seqs), held_text(seq_runs(seqs))))
        self.state.changed.difference_update(seqs)

    @rule(data=st.data())
    def change_while_parked(self, data: st.DataObject) -> None:
        state = self.state
        if not state.parked:
            return
        s = data.draw(st.sampled_from(sorted(state.parked)))
        self.store.query(
            lambda db: db.execute(
                "UPDATE parked SET body = ? WHERE packet_seq = ?", (b'{"n":-2}', s)
            )
        )
        state.changed.add(s)

    @rule()
    def reopen(self) -> None:
        """A clean stop and start: nothing lost, nothing to note, every byte counted."""
        self.store.close()
        self.store = DurableStore(self.path, "NORMAL")
        backlog = self.store.open()
        assert backlog.lost is None and backlog.note == ""
        assert backlog.count == len(self.state.held)
        assert backlog.bytes == sum(self._size(s) for s in self.state.held)
        assert backlog.next_seq == self.next_seq
        self._opened(clean=True)

    # -- the store agrees with the model ---------------------------------------------------

    @invariant()
    def file_ledger_and_model_agree(self) -> None:
        state = self.state
        packets = self.store.query(lambda db: list(live_packets(db)))
        assert [s for s, _a, _b in packets] == sorted(state.held)
        for s, _at, body in packets:
            if s not in state.changed:
                assert body == state.held[s]
        rows = self.store.query(
            lambda db: db.execute("SELECT seq, last, body, checksum, sizes FROM packets").fetchall()
        )
        for first, last, body, stored, sizes in rows:
            end = first if last is None else last
            damaged = {s for s in state.held if first <= s <= end} & state.changed
            assert row_intact(first, last, body, sizes, stored) == (not damaged)
        assert Owed((s, s) for s in sorted(state.held)).runs() == self.store._owed.runs()
        on_disk = Ledger(self.path.with_name(self.path.name + LEDGER_SUFFIX)).read()
        assert on_disk is not None
        if self.store._ledger_stale:  # a failed commit's ledger write stayed: it may owe
            assert implied_owed(on_disk, set(state.held)) <= set(state.held)  # less, never
        else:  # more, until the next write
            assert on_disk.pending is None
            assert on_disk.runs == self.store._owed.runs()
            assert on_disk.owed_count == len(state.held)
        moved = self.store.query(
            lambda db: (
                sorted(s for (s,) in db.execute("SELECT seq FROM moved"))
                if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'moved'").fetchone()
                else []
            )
        )
        assert moved == sorted(state.moved)
        parked = self.store.query(
            lambda db: db.execute("SELECT packet_seq, body, checksum FROM parked").fetchall()
        )
        assert {s for s, _b, _c in parked} == set(state.parked)
        for s, body, stored in parked:
            assert (zlib.adler32(body) == stored) == (s not in state.changed)
        kept = self.store.query(
            lambda db: db.execute(
                "SELECT seq, coalesce(last, seq), packets, held FROM quarantine ORDER BY id"
            ).fetchall()
        )
        assert kept == state.quarantine

    def snapshot(self) -> State:
        """A copy of the model's state (what a crash may roll the file back to)."""
        return copy.deepcopy(self.state)
