"""The durable store against a model of what it must hold, through crashes and damage on disk
(hypothesis, stateful; Vector's disk-buffer model tests are the anchor).

The rules of tests/runtime/store_rules.py (the model test_store_model.py drives as they are:
add, read, settle, displace, move out, park, requeue, drop parked, a row changed on disk or
while parked, a batch row's `last` raised by hand, reopen), and besides them the machine here
crashes the store: it copies the store's files as a `kill -9` leaves them (the file, its -wal
and -shm, the ledger; no checkpoint, no close), damages the copy the way issue 13 lists, and
opens the copy as the store from then on. The model knows what each commit left in the WAL (the
WAL's size after each step), so for every kind of damage it says what the open must find and
report:

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

After every step the file, the ledger on disk and the model agree (the invariant of
store_rules.py). A slower variant (`slow`) runs more and longer examples; a second slow
test kills a real child process holding the store and checks what a reopen recovers.
"""

from __future__ import annotations

import contextlib
import copy
import os
import resource
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from schnitzel.durable.ledger import LEDGER_SUFFIX, Ledger, LedgerState
from schnitzel.durable.store import Backlog, DurableStore, StoreError
from tests.runtime.store_rules import State, StoreRules, body_of, implied_owed

WAL_HEADER = 32
DAMAGE = ("none", "wal_deleted", "wal_cut", "wal_flip", "ledger_missing", "ledger_foreign")
WAL_DAMAGE = ("wal_deleted", "wal_cut", "wal_flip")


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


class StoreDamageModel(StoreRules):
    @initialize()
    def open_store(self) -> None:
        self.crashes = 0
        self.start("schnitzel-damage-")
        self.reopen()  # checkpointed: what the file holds without its WAL is known

    def _opened(self, clean: bool) -> None:
        """After an open: the read cursor starts over; what the WAL holds from here on is
        tracked commit by commit. `base` is what the file holds without its WAL: known only
        after a clean close (everything checkpointed)."""
        super()._opened(clean)
        self.salt = wal_salt(self.path)
        self.open_end = wal_size(self.path)
        self.history: list[tuple[int, State]] = []
        self.base: State | None = self.snapshot() if clean else None

    # -- damage -----------------------------------------------------------------------------

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
        self._opened(clean=False)

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
        self._opened(clean=False)  # the new store's first commits are in its WAL only: no base yet

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


class Drawn:
    """Replays the values a rule once drew (hypothesis's `data`), in order."""

    def __init__(self, *values: object) -> None:
        self.values = list(values)

    def draw(self, _strategy: object) -> object:
        return self.values.pop(0)


@settings(max_examples=1, database=None, deadline=None)
@given(st.none())  # a test of hypothesis's, for the rules' `event` calls: one run, no drawing
def test_the_model_replays_seqs_moved_out_then_used_again_after_another_stores_ledger(
    _: None,
) -> None:
    """Found by the model (the longer run, a seed of it): add 8, move out [1, 2, 3] and then
    [4..8] (every row gone), crash with another store's ledger, add 1, move out [1]. The
    store cannot know the test's own table, and the foreign ledger tells it nothing: seq 1
    is used again, as after rows settled, and the model's table (keyed by seq) refused the
    second move. The store keeps the seqs of the tables it knows (the next test)."""
    machine = StoreDamageModel()
    steps = [
        machine.open_store,
        lambda: machine.add(8),
        lambda: machine.move_out(Drawn([1, 2, 3])),
        lambda: machine.move_out(Drawn([4, 5, 6, 7, 8])),
        lambda: machine.crash("ledger_foreign", Drawn(1)),
        lambda: machine.add(1),
        lambda: machine.move_out(Drawn([1])),
    ]
    try:
        for step in steps:
            step()
            machine.file_ledger_and_model_agree()
            machine.track_the_wal()
        assert sorted(machine.state.moved) == [1, 1, 2, 3, 4, 5, 6, 7, 8]
    finally:
        machine.teardown()


def test_quarantined_seqs_are_not_used_again_after_another_stores_ledger(tmp_path: Path) -> None:
    """What a real caller of `move_out` keeps (the quarantine table) holds its seqs: an open
    with another store's ledger (or none) still starts above them, so no quarantine entry
    ever shares a seq with a later packet."""
    path = tmp_path / "out.db"
    store = DurableStore(path, "NORMAL")
    store.open()
    store.commit([(s, 0.0, body_of(s)) for s in range(1, 9)], [], 0)
    store.quarantine([(s, "refused") for s in (1, 2, 3)])
    store.quarantine([(s, "refused") for s in range(4, 9)])
    store.close()
    other = DurableStore(tmp_path / "other.db", "NORMAL")
    other.open()
    other.commit([(1, 0.0, body_of(1))], [], 0)
    other.close()
    shutil.copyfile(tmp_path / ("other.db" + LEDGER_SUFFIX), tmp_path / ("out.db" + LEDGER_SUFFIX))
    again = DurableStore(path, "NORMAL")
    backlog = again.open()
    again.close()
    assert backlog.lost is not None and "another store" in backlog.lost.cause
    assert backlog.next_seq == 9
