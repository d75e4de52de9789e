"""The durable store against a model of what it must hold, through crashes and damage on disk
(hypothesis, stateful; Vector's disk-buffer model tests are the anchor).

Besides the steps of tests/runtime/test_store_model.py (add, read, settle, park, requeue, drop
parked, a row changed on disk), the machine here crashes the store: it copies the store's
files as a `kill -9` leaves them (the file, its -wal and -shm, the ledger; no checkpoint, no
close), damages the copy the way issue 13 lists, and opens the copy as the store from then on.
The model knows what each commit left in the WAL (the WAL's size after each step), so for
every kind of damage it says what the open must find and report:

- a crash alone: everything committed is there, nothing is lost, rows read and not settled
  come back (at least once);
- the WAL deleted: the file holds what it held at the last checkpoint (the last open); rows
  the ledger owes beyond that are reported lost, by count and range; rows settled since come
  back;
- the WAL cut short or one byte of it flipped: SQLite keeps the commits before the damaged
  frame; the rest is reported lost, exactly;
- the file emptied (truncated to 0 bytes): every owed row reported lost, the store new;
- the ledger deleted: nothing reported lost, a note that the open could not check;
- another store's ledger: that ledger's rows reported lost, cause "another store";
- a full file system (RLIMIT_FSIZE at the files' current sizes) during a commit: the commit
  fails whole, nothing of it in the file or the ledger, or it succeeds whole.

After every step the file, the ledger on disk and the model agree (the invariants of
test_store_model.py). A slower variant (`slow`) runs more and longer examples; a second slow
test kills a real child process holding the store and checks what a reopen recovers.
"""

from __future__ import annotations

import contextlib
import copy
import os
import resource
import shutil
import signal
import sqlite3
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from schnitzel.durable.ledger import LEDGER_SUFFIX, Ledger, LedgerState, Owed
from schnitzel.durable.parking import ParkingChanges, Selection
from schnitzel.durable.rows import live_packets, row_checksum
from schnitzel.durable.store import Backlog, DurableStore, NewRow, StoreError
from schnitzel.runtime.durable_commits import commit_on_store

WAL_HEADER = 32
DAMAGE = ("none", "wal_deleted", "wal_cut", "wal_flip", "ledger_missing", "ledger_foreign")
WAL_DAMAGE = ("wal_deleted", "wal_cut", "wal_flip")


@dataclass
class State:
    """What the store file holds (the model's side of it)."""

    held: dict[int, bytes] = field(default_factory=dict)
    """seq -> body of the rows in `packets` (the backlog)."""
    parked: dict[int, bytes] = field(default_factory=dict)
    """packet seq -> body of the rows in `parked`."""
    quarantined: set[int] = field(default_factory=set)
    changed: set[int] = field(default_factory=set)
    """Seqs (in `packets` or parked) whose body was changed on disk: never returned."""


def body_of(seq: int) -> bytes:
    return f'{{"n":{seq}}}'.encode()


def commit(
    store: DurableStore, rows: list[NewRow], deletes: list[tuple[int, int]], c: ParkingChanges
) -> None:
    """As the durable inbox commits with parking changes (schnitzel/runtime/durable_inbox.py)."""
    commit_on_store(store, rows, deletes, 0, c)


def store_files(path: Path) -> list[Path]:
    return [path.with_name(path.name + s) for s in ("", "-wal", "-shm", LEDGER_SUFFIX)]


def wal_salt(path: Path) -> bytes:
    wal = path.with_name(path.name + "-wal")
    try:
        with wal.open("rb") as f:
            return f.read(WAL_HEADER)[16:24]
    except FileNotFoundError:
        return b""


def wal_size(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


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


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Writes past `limit` bytes fail with EFBIG, as on a full file system."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


class StoreDamageModel(RuleBasedStateMachine):
    @initialize()
    def open_store(self) -> None:
        self.dirs: list[Path] = []
        self.crashes = 0
        self.state = State()
        self.next_seq = 1
        self.row_of: dict[int, int] = {}
        """Packet seq -> the first seq of its batch row (packets of one commit share one)."""
        self.path = self._new_dir() / "out.db"
        self.store = DurableStore(self.path, "NORMAL")
        backlog = self.store.open()
        assert backlog.count == 0 and backlog.lost is None
        self._opened()
        self.reopen()  # checkpointed: what the file holds without its WAL is known

    def _new_dir(self) -> Path:
        self.dirs.append(Path(tempfile.mkdtemp(prefix="schnitzel-damage-")))
        return self.dirs[-1]

    def _opened(self) -> None:
        """After an open: the read cursor starts over; what the WAL holds from here on is
        tracked commit by commit. `base` is what the file holds without its WAL: known only
        after a clean close (everything checkpointed)."""
        self.cursor = 0
        self.read_seqs: list[int] = []
        self.salt = wal_salt(self.path)
        self.open_end = wal_size(self.path)
        self.history: list[tuple[int, State]] = []
        self.base: State | None = None

    def teardown(self) -> None:
        self.store.close()
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)

    # -- what a node does -------------------------------------------------------------------

    def _new_rows(self, n: int, times: int = 1) -> list[NewRow]:
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
        state = self.state
        good, damaged = self.store.read(limit)
        expected = sorted(s for s in state.held if s > self.cursor)[:limit]
        assert sorted([s for s, _a, _b in good] + [s for s, *_ in damaged]) == expected
        assert {s for s, *_ in damaged} == state.changed & set(expected)
        for s, _at, body in good:
            assert body == state.held[s]
        for s, *_ in damaged:
            del state.held[s]
            state.changed.discard(s)
            state.quarantined.add(s)
        if expected:
            self.cursor = expected[-1]
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

    @rule(data=st.data(), n=st.integers(0, 5))
    def park(self, data: st.DataObject, n: int) -> None:
        if not self.read_seqs:
            return
        seqs = data.draw(st.lists(st.sampled_from(self.read_seqs), unique=True, max_size=5))
        changes = ParkingChanges(park=[(s, 1.0, "refused", f"p{s}") for s in seqs])
        commit(self.store, self._new_rows(n), [(s, s) for s in sorted(seqs)], changes)
        assert changes.parked == len(seqs)
        for s in seqs:
            self.state.parked[s] = self.state.held.pop(s)
            self.read_seqs.remove(s)

    @rule(data=st.data())
    def requeue(self, data: st.DataObject) -> None:
        state = self.state
        if not state.parked:
            return
        chosen = data.draw(st.lists(st.sampled_from(sorted(state.parked)), unique=True, min_size=1))
        ids = self._parked_ids(chosen)
        changes = ParkingChanges(
            requeue=Selection(ids=tuple(ids)),
            requeue_base_seq=self.next_seq,
            requeue_room=len(ids),
        )
        commit(self.store, [], [], changes)
        assert changes.requeued == len(chosen)
        for packet_seq in sorted(chosen, key=lambda s: ids[chosen.index(s)]):
            state.held[self.next_seq] = state.parked.pop(packet_seq)
            if packet_seq in state.changed:
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
        ids = dict(
            self.store.query(lambda db: db.execute("SELECT packet_seq, id FROM parked").fetchall())
        )
        return [ids[s] for s in packet_seqs]

    # -- damage -----------------------------------------------------------------------------

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

    @rule(n=st.integers(1, 40), settle=st.booleans())
    def commit_on_full_disk(self, n: int, settle: bool) -> None:
        """A commit while the file system has no room beyond the files' current sizes: it
        fails whole (StoreError, nothing of it kept anywhere) or, when SQLite had room in
        pages it already owns, succeeds whole."""
        limit = max(p.stat().st_size for p in store_files(self.path) if p.exists())
        rows = [(s, 0.0, body_of(s) * 60) for s in range(self.next_seq, self.next_seq + n)]
        done = list(self.read_seqs) if settle else []
        try:
            with file_size_limit(limit):
                self.store.commit(rows, [(s, s) for s in done], 0)
        except StoreError:
            event("full disk: commit refused")
            # The failed commit's frames stay in the WAL past its valid end, where the next
            # commits overwrite them: the WAL's size no longer tells where a commit ends.
            self.base = None
            return
        self._new_rows(n, times=60)
        for s in done:
            self.state.held.pop(s, None)
            self.read_seqs.remove(s)

    @rule()
    def reopen(self) -> None:
        """A clean stop and start: nothing lost, nothing to note."""
        self.store.close()
        self.store = DurableStore(self.path, "NORMAL")
        backlog = self.store.open()
        assert backlog.lost is None and backlog.note == ""
        assert backlog.count == len(self.state.held)
        assert backlog.next_seq == self.next_seq
        self._opened()
        self.base = copy.deepcopy(self.state)

    @precondition(lambda self: self.crashes < 4)
    @rule(damage=st.sampled_from(DAMAGE) | st.sampled_from(WAL_DAMAGE), data=st.data())
    def crash(self, damage: str, data: st.DataObject) -> None:
        """Copy the files as a kill -9 leaves them, damage the copy, open it."""
        if damage in WAL_DAMAGE and self.base is None:
            damage = "none"  # what the file holds without its WAL is not known: no checkpoint yet
        self.crashes += 1
        target = self._new_dir() / "out.db"
        for src, dst in zip(store_files(self.path), store_files(target), strict=True):
            if src.exists():
                shutil.copyfile(src, dst)
        self.store.close()
        self.path = target
        left = Ledger(target.with_name(target.name + LEDGER_SUFFIX)).read()
        assert left is not None
        owed = left
        wal = target.with_name(target.name + "-wal")
        survives = self.state
        expect_note = ""
        foreign: tuple[int, int, int] | None = None
        if damage == "wal_deleted":
            wal.unlink(missing_ok=True)
            assert self.base is not None
            survives = self.base
        elif damage in ("wal_cut", "wal_flip"):
            end = wal_size(target)
            if end <= self.open_end:
                damage = "none"
            else:
                at = data.draw(st.integers(self.open_end, end - 1))
                survives = self._state_at(at)
                if damage == "wal_cut":
                    os.truncate(wal, at)
                else:
                    with wal.open("r+b") as f:
                        f.seek(at)
                        byte = f.read(1)
                        f.seek(at)
                        f.write(bytes([byte[0] ^ 0x40]))
        elif damage == "ledger_missing":
            target.with_name(target.name + LEDGER_SUFFIX).unlink()
            expect_note = "is missing"
        elif damage == "ledger_foreign":
            foreign = self._foreign_ledger(target, data.draw(st.integers(1, 9)))
        self.store = DurableStore(target, "NORMAL")
        backlog = self.store.open()
        event(f"crash: {damage}, {'loss' if backlog.lost else 'no loss'}")
        self._check_open(backlog, damage, owed, survives, expect_note, foreign)
        self.state = copy.deepcopy(survives)
        self._opened()

    def _state_at(self, offset: int) -> State:
        """What the file holds when its WAL is good only up to `offset`: the state after
        the last commit whose frames all lie before it."""
        state = self.base
        for end, after in self.history:
            if end > offset:
                break
            state = after
        assert state is not None
        return state

    def _foreign_ledger(self, target: Path, n: int) -> tuple[int, int, int]:
        """Another store's ledger (owing n rows) in place of this one's."""
        other_path = self._new_dir() / "other.db"
        other = DurableStore(other_path, "NORMAL")
        other.open()
        other.commit([(s, 0.0, body_of(s)) for s in range(1, n + 1)], [], 0)
        other.close()
        shutil.copyfile(
            other_path.with_name(other_path.name + LEDGER_SUFFIX),
            target.with_name(target.name + LEDGER_SUFFIX),
        )
        return n, 1, n

    def _check_open(
        self,
        backlog: Backlog,
        damage: str,
        owed: LedgerState,
        survives: State,
        note: str,
        foreign: tuple[int, int, int] | None,
    ) -> None:
        assert backlog.quarantined is None
        assert backlog.count == len(survives.held)
        if foreign is not None:
            assert backlog.lost is not None
            assert (backlog.lost.count, backlog.lost.first_seq, backlog.lost.last_seq) == foreign
            assert "another store" in backlog.lost.cause
        else:
            present = set(survives.held)
            lost = sorted(implied_owed(owed, present) - present)
            if not lost:
                assert backlog.lost is None, (damage, backlog.lost)
            else:
                assert backlog.lost is not None, (damage, lost)
                assert (backlog.lost.count, backlog.lost.first_seq, backlog.lost.last_seq) == (
                    len(lost),
                    lost[0],
                    lost[-1],
                ), damage
                assert "missing from the store file" in backlog.lost.cause
        if note:
            assert note in backlog.note
        else:
            assert backlog.note == ""
        if damage not in ("ledger_missing", "ledger_foreign"):  # else the seqs above the
            # file's are unknown. A failed commit whose ledger could not be put back (a full
            # disk) may have used up seqs: never reused, skipped.
            assert backlog.next_seq >= self.next_seq
        self.next_seq = backlog.next_seq

    @rule()
    def empty_file(self) -> None:
        """After a crash, the store file truncated to 0 bytes and its WAL gone: every owed row
        is reported lost, and the store starts new (seqs from 1: another store)."""
        owed = sorted(self.state.held)
        self.store.close()
        self.crashes += 1
        os.truncate(self.path, 0)
        for side in store_files(self.path)[1:3]:
            side.unlink(missing_ok=True)
        self.store = DurableStore(self.path, "NORMAL")
        backlog = self.store.open()
        assert backlog.count == 0 and backlog.quarantined is None
        if owed:
            assert backlog.lost is not None
            assert (backlog.lost.count, backlog.lost.first_seq, backlog.lost.last_seq) == (
                len(owed),
                owed[0],
                owed[-1],
            )
            assert "missing or empty" in backlog.lost.cause
        else:
            assert backlog.lost is None
        assert backlog.next_seq == 1
        self.state = State()
        self.next_seq = 1
        self.row_of = {}
        self._opened()  # the new store's first commits are in its WAL only: no base yet

    # -- the store agrees with the model ---------------------------------------------------

    @rule()
    def checkpoint(self) -> None:
        """SQLite copies the WAL into the file and empties it (as its autocheckpoint does):
        from here the file alone holds the model's state."""
        self.store.query(lambda db: db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall())
        assert wal_size(self.path) == 0
        self.base, self.history = copy.deepcopy(self.state), []
        self.salt, self.open_end = b"", 0

    @invariant()
    def track_the_wal(self) -> None:
        salt, size = wal_salt(self.path), wal_size(self.path)
        if salt != self.salt and self.salt == b"":  # the first write after a checkpoint
            self.salt = salt
        if salt != self.salt:  # the WAL started over (a checkpoint): its history is gone
            self.salt, self.base, self.history = salt, None, []
            self.open_end = size
        elif size > (self.history[-1][0] if self.history else self.open_end):
            self.history.append((size, copy.deepcopy(self.state)))

    @invariant()
    def file_ledger_and_model_agree(self) -> None:
        state = self.state
        packets = self.store.query(lambda db: list(live_packets(db)))
        assert [s for s, _a, _b in packets] == sorted(state.held)
        for s, _at, body in packets:
            if s not in state.changed:
                assert body == state.held[s]
        rows = self.store.query(
            lambda db: db.execute(
                "SELECT seq, coalesce(last, seq), body, checksum, sizes FROM packets"
            ).fetchall()
        )
        for first, last, body, stored, sizes in rows:
            damaged = {s for s in state.held if first <= s <= last} & state.changed
            assert (row_checksum(body, sizes) == stored) == (not damaged)
        assert Owed((s, s) for s in sorted(state.held)).runs() == self.store._owed.runs()
        on_disk = Ledger(self.path.with_name(self.path.name + LEDGER_SUFFIX)).read()
        assert on_disk is not None
        implied = implied_owed(on_disk, set(state.held))
        if self.store._ledger_stale:  # a failed commit's ledger write stayed: it may owe
            assert implied <= set(state.held)  # less (never more) until the next write
        else:
            assert implied == set(state.held)
        parked = self.store.query(
            lambda db: db.execute("SELECT packet_seq, body, checksum FROM parked").fetchall()
        )
        assert {s for s, _b, _c in parked} == set(state.parked)
        for s, body, stored in parked:
            assert (zlib.adler32(body) == stored) == (s not in state.changed)
        kept = self.store.query(
            lambda db: db.execute("SELECT seq, coalesce(last, seq), packets FROM quarantine")
        ).fetchall()
        assert sum(n for _s, _l, n in kept) == len(state.quarantined)
        assert all(any(a <= s <= b for a, b, _n in kept) for s in state.quarantined)


StoreDamageModel.TestCase.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None
)
test_the_store_reports_exactly_what_damage_took = StoreDamageModel.TestCase


@pytest.mark.soak  # the model above, ten times the steps: `just test-soak`, not `just test`
def test_the_store_reports_exactly_what_damage_took_longer() -> None:
    run_state_machine_as_test(
        StoreDamageModel, settings=settings(max_examples=400, stateful_step_count=60, deadline=None)
    )


# -- regressions the model found ---------------------------------------------------------------


def test_a_ledger_write_cut_short_by_a_full_disk_is_an_error(tmp_path: Path) -> None:
    """A full file system lets pwrite write what fits and return the count: the ledger took
    that for a whole write and left a torn slot behind, unannounced."""
    ledger = Ledger(tmp_path / "x.ledger")
    ledger.open()
    state = LedgerState("s", 0, 0, [], None)
    ledger.write(state)
    ledger.write(state)  # both slots exist: the file is one slot and a record long
    size = ledger.path.stat().st_size
    state = LedgerState("s", 9, 9, [(1, 9)], None)  # longer than the record in that slot
    with file_size_limit(size), pytest.raises(OSError, match="cut short"):
        ledger.write(state)
    ledger.close()


def test_a_commit_whose_ledger_update_failed_is_reported_lost_with_the_file(tmp_path: Path) -> None:
    """Found by the model: the commit succeeds, the ledger's write after it does not (the
    disk filled up in between); the ledger still marks that commit pending. Then the file is
    lost (emptied while stopped): a pending commit whose rows are not in the file counts as
    never made, so its rows were not reported lost. Now the ledger is written again at close
    (and at the next commit)."""
    path = tmp_path / "out.db"
    store = DurableStore(path, "NORMAL")
    store.open()
    limit = max(p.stat().st_size for p in store_files(path) if p.exists())
    with file_size_limit(limit):
        store.commit([(1, 0.0, body_of(1))], [], 0)
    store.close()
    os.truncate(path, 0)
    path.with_name(path.name + "-wal").unlink(missing_ok=True)
    again = DurableStore(path, "NORMAL")
    backlog = again.open()
    again.close()
    assert backlog.lost is not None and backlog.lost.count == 1
