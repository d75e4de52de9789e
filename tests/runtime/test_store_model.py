"""The durable store against a model of what it should hold (hypothesis, stateful): rows
added, read back in order, settled, moved out (parked), changed on disk, and the store
closed and opened again. After every step the file, the ledger and the model agree, and an
open never reports a loss that did not happen."""

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
from schnitzel.durable.store import DurableStore, checksum


class StoreModel(RuleBasedStateMachine):
    """`held`: seq -> body the store must hold; `parked`: seqs moved out; `changed`: seqs
    whose body was changed on disk (to be quarantined when read, never returned)."""

    @initialize()
    def open_store(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="schnitzel-model-"))
        self.path = self.dir / "out.db"
        self.store = DurableStore(self.path, "NORMAL")
        assert self.store.open().count == 0
        self.held: dict[int, bytes] = {}
        self.parked: set[int] = set()
        self.changed: set[int] = set()
        self.quarantined: set[int] = set()
        self.next_seq = 1
        self.cursor = 0
        self.read_seqs: list[int] = []

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir)

    @rule(n=st.integers(1, 20))
    def add(self, n: int) -> None:
        bodies = {seq: f'{{"n":{seq}}}'.encode() for seq in range(self.next_seq, self.next_seq + n)}
        self.store.commit([(seq, 0.0, b, checksum(b)) for seq, b in bodies.items()], [], 0)
        self.held.update(bodies)
        self.next_seq += n

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

    @rule(data=st.data())
    def park(self, data: st.DataObject) -> None:
        if not self.held:
            return
        seqs = data.draw(st.lists(st.sampled_from(sorted(self.held)), unique=True, max_size=5))
        if not seqs:
            return

        def copy(db: sqlite3.Connection, runs: list[tuple[int, int]]) -> None:
            db.execute("CREATE TABLE IF NOT EXISTS parked (seq INTEGER PRIMARY KEY, body BLOB)")
            db.executemany(
                "INSERT INTO parked SELECT seq, body FROM packets WHERE seq BETWEEN ? AND ?", runs
            )

        self.store.move_out(seqs, copy)
        for seq in seqs:
            del self.held[seq]
            self.parked.add(seq)
            self.changed.discard(seq)
            if seq in self.read_seqs:
                self.read_seqs.remove(seq)

    @rule(data=st.data())
    def change_on_disk(self, data: st.DataObject) -> None:
        unread = sorted(seq for seq in self.held if seq > self.cursor)
        if not unread:
            return
        seq = data.draw(st.sampled_from(unread))
        db = self.store._db
        assert db is not None
        db.execute("UPDATE packets SET body = ? WHERE seq = ?", (b'{"n":-1}', seq))
        self.changed.add(seq)

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = DurableStore(self.path, "NORMAL")
        backlog = self.store.open()
        assert backlog.lost is None and backlog.note == ""
        assert backlog.count == len(self.held)
        assert backlog.next_seq == self.next_seq
        self.cursor = 0
        self.read_seqs = []

    @invariant()
    def file_ledger_and_model_agree(self) -> None:
        db = self.store._db
        assert db is not None
        in_file = [seq for (seq,) in db.execute("SELECT seq FROM packets ORDER BY seq")]
        assert in_file == sorted(self.held)
        assert Owed((s, s) for s in sorted(self.held)).runs() == self.store._owed.runs()
        on_disk = Ledger(self.store._ledger.path).read()  # type: ignore[union-attr]
        assert on_disk is not None and on_disk.pending is None
        assert on_disk.runs == self.store._owed.runs()
        assert on_disk.owed_count == len(self.held)
        parked = set()
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'parked'").fetchone():
            parked = {seq for (seq,) in db.execute("SELECT seq FROM parked")}
        assert parked == self.parked
        kept = {seq for (seq,) in db.execute("SELECT seq FROM quarantine")}
        assert kept == self.quarantined
        for seq, body, stored in db.execute("SELECT seq, body, checksum FROM packets"):
            assert (zlib.adler32(body) == stored) == (seq not in self.changed)


StoreModel.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
test_the_store_holds_what_the_model_holds = StoreModel.TestCase
