"""The durable store's files: one store, one run (through any path to it), a store this user
cannot write refused at start, a format 1 store migrated, and the ledger's own failure
modes (a crash mid-commit, a torn or missing ledger). Real files, real SQLite, real users."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from schnitzel.contract.codec import encode_packet
from schnitzel.contract.packet import StreamPacket
from schnitzel.durable.ledger import SLOT_BYTES, Ledger, LedgerState
from schnitzel.durable.rows import live_packets
from schnitzel.durable.store import FORMAT_VERSION, DurableStore, NewRow
from schnitzel.errors import RuntimeStartError

REPO = Path(__file__).resolve().parents[2]


def body(n: int) -> bytes:
    packet = StreamPacket.new(kind="sensor", source_id="src", seq=n, payload={"n": n})
    return encode_packet(packet).encode()


def row(seq: int, encoded: bytes) -> NewRow:
    return (seq, time.time(), encoded)


def fill(path: Path, n: int) -> DurableStore:
    """An open store holding n packets (store seqs 1..n)."""
    store = DurableStore(path)
    store.open()
    store.commit([row(seq, body(seq - 1)) for seq in range(1, n + 1)], [], 0)
    return store


def count(path: Path) -> int:
    with closing(sqlite3.connect(path)) as db:
        return len(list(live_packets(db)))


# -- one store, one run -------------------------------------------------------------------


@pytest.mark.parametrize("via", ["symlinked file", "symlinked directory", "relative path"])
def test_a_second_open_through_another_path_is_refused_naming_the_holder(
    tmp_path: Path, via: str
) -> None:
    real = tmp_path / "st" / "out.db"
    holder = fill(real, 3)
    if via == "symlinked file":  # the reproduction of issue 13 §2
        (tmp_path / "stfile").mkdir()
        other = tmp_path / "stfile" / "out.db"
        other.symlink_to(Path("..") / "st" / "out.db")
    elif via == "symlinked directory":
        (tmp_path / "stdir").symlink_to(tmp_path / "st")
        other = tmp_path / "stdir" / "out.db"
    else:
        (tmp_path / "elsewhere").mkdir()
        other = tmp_path / "elsewhere" / ".." / "st" / "out.db"
    try:
        # the holder is in this process: refused as this run's own store
        this = rf"already in use by this run \(this process, pid {os.getpid()}, holds "
        with pytest.raises(RuntimeStartError, match=this):
            DurableStore(other).open()
    finally:
        holder.close()
    again = DurableStore(other)  # free once the holder closed it
    assert again.open().count == 3
    again.close()


def test_the_lock_goes_with_a_killed_process(tmp_path: Path) -> None:
    store = tmp_path / "out.db"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; "
            "from schnitzel.durable.store import DurableStore; "
            f"DurableStore(Path({str(store)!r})).open(); "
            "print('open', flush=True); time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == b"open\n"
        with pytest.raises(RuntimeStartError, match=rf"pid {child.pid} holds"):
            DurableStore(store).open()
    finally:
        child.kill()
        child.wait(30)
    DurableStore(store).open()


# -- a store this user cannot write -------------------------------------------------------


def test_an_immutable_store_file_is_refused_at_open_and_left_whole(tmp_path: Path) -> None:
    """Root ignores mode 0444, so this makes the file immutable (`chattr +i`), which stops
    root too: what the store checks is that its write at open succeeds."""
    path = tmp_path / "out.db"
    fill(path, 5).close()
    if subprocess.run(["chattr", "+i", str(path)], check=False, capture_output=True).returncode:
        pytest.skip("chattr +i is not available here")
    try:
        with pytest.raises(RuntimeStartError, match=r"cannot be written by this user"):
            DurableStore(path).open()
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)
    assert count(path) == 5


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory another user can reach (pytest's tmp_path is private to root)."""
    directory = Path(tempfile.mkdtemp(prefix="schnitzel-h13-"))
    directory.chmod(0o755)
    yield directory
    for path in directory.rglob("*"):
        if path.is_dir():
            path.chmod(0o755)
    shutil.rmtree(directory)


def as_nobody(*command: str) -> subprocess.CompletedProcess[str]:
    if os.getuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run a command as another user")
    return subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *command],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"},
        timeout=120,
    )


def test_a_run_as_a_user_who_cannot_write_the_store_is_refused_at_start(
    shared_dir: Path,
) -> None:
    """The reproduction of issue 13 §2: a backlog in a file of mode 0444. The run is started
    as `nobody` (setpriv), for whom the mode holds; it must refuse, not deliver the backlog
    it could never delete."""
    state = shared_dir / "state"
    state.mkdir()
    store = state / "out.db"
    fill(store, 50).close()
    store.chmod(0o444)
    for side in state.iterdir():
        if side != store:
            side.chmod(0o666)
    state.chmod(0o777)
    out = state / "out.jsonl"
    graph = shared_dir / "graph.yaml"
    graph.write_text(
        "version: 2\nnodes:\n"
        "  - {id: src, kind: source, plugin: synthetic, config: {count: 0}}\n"
        f"  - {{id: out, kind: sink, plugin: jsonl, config: {{path: {out}}}, "
        "inbox: {durable: {path: state/out.db}}}\n"
        "edges:\n  - {from: src, to: out}\n"
    )
    done = as_nobody(
        sys.executable, "-m", "schnitzel.cli.main", "run", str(graph),
        "--state-dir", str(state / "run"),
    )  # fmt: skip
    assert done.returncode != 0, done.stderr
    assert "cannot be written by this user" in done.stderr, done.stderr
    assert "out.db" in done.stderr
    assert not out.exists() or out.read_text() == ""  # nothing delivered
    assert count(store) == 50


@pytest.mark.parametrize("lock_file", ["absent", "present"])
def test_a_store_in_a_directory_the_user_cannot_write_is_refused_at_open(
    shared_dir: Path, lock_file: str
) -> None:
    """As `nobody` (setpriv): the lock file, or else SQLite's -wal and -shm files, cannot be
    created in a directory of mode 0555."""
    state = shared_dir / "state"
    state.mkdir()
    store = state / "out.db"
    fill(store, 5).close()
    for side in state.iterdir():
        if lock_file == "absent" and side != store:
            side.unlink()
        else:
            side.chmod(0o666)
    state.chmod(0o555)
    done = as_nobody(
        sys.executable, "-c",
        "from pathlib import Path; from schnitzel.durable.store import DurableStore; "
        f"DurableStore(Path({str(store)!r})).open()",
    )  # fmt: skip
    assert done.returncode != 0
    said = done.stderr.splitlines()[-1]
    if lock_file == "absent":
        assert "cannot create the lock file" in said and "must be writable by this user" in said
    else:
        assert "cannot be written by this user" in said, said
    assert count(store) == 5


# -- format 1 ------------------------------------------------------------------------------


@pytest.mark.parametrize(("sync", "level"), [("FULL", 2), ("NORMAL", 1)])
def test_commits_after_an_open_run_at_the_stores_own_sync_new_or_reopened(
    tmp_path: Path, sync: str, level: int
) -> None:
    """An open writes without a sync per step (a new file's tables at OFF, synced once; the
    time of a later open at NORMAL); the commits after it run at the store's `sync` again.
    Closed, the WAL is checkpointed into the file and gone, and each open left its time."""
    path = tmp_path / "out.db"
    for n in (1, 2):  # created, then reopened
        store = DurableStore(path, sync)
        assert store.open().count == n - 1
        try:
            assert store.query(lambda db: db.execute("PRAGMA synchronous").fetchone()) == (level,)
            store.commit([row(n, body(n))], [], 0)
        finally:
            store.close()
        assert not path.with_name("out.db-wal").exists()
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            assert db.execute("SELECT seq FROM packets").fetchall() == [
                (k,) for k in range(1, n + 1)
            ]
            opened = db.execute("SELECT value FROM meta WHERE key = 'opened'").fetchone()
        assert time.time() - float(opened[0]) < 3600


def test_a_format_1_store_is_migrated_and_its_backlog_delivered(tmp_path: Path) -> None:
    path = tmp_path / "out.db"
    bodies = {n: body(n) for n in (4, 5, 9)}
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(
            "CREATE TABLE packets (seq INTEGER PRIMARY KEY, enqueued REAL NOT NULL, "
            "body BLOB NOT NULL)"
        )
        db.executemany("INSERT INTO packets VALUES (?, 0.0, ?)", bodies.items())
        db.execute("PRAGMA application_id=1396919898")
        db.execute("PRAGMA user_version=1")
    store = DurableStore(path)
    backlog = store.open()
    assert (backlog.count, backlog.next_seq, backlog.lost, backlog.note) == (3, 10, None, "")
    good, damaged = store.read(10)
    assert [seq for seq, _at, _body in good] == [4, 5, 9] and damaged == []
    store.close()
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == FORMAT_VERSION == 5
        sums = db.execute("SELECT seq, checksum FROM packets").fetchall()
        assert db.execute("SELECT count(*) FROM parked").fetchone()[0] == 0
    assert sums == [(n, zlib.adler32(b)) for n, b in bodies.items()]


def test_a_new_store_has_the_tables_a_migrated_one_has(tmp_path: Path) -> None:
    """A new file's tables are created whole; a format 1 store gets them column by column:
    the same columns, in the same order (rows are inserted by position)."""
    old, new = tmp_path / "old.db", tmp_path / "new.db"
    with closing(sqlite3.connect(old, isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(
            "CREATE TABLE packets (seq INTEGER PRIMARY KEY, enqueued REAL NOT NULL, "
            "body BLOB NOT NULL)"
        )
        db.execute("PRAGMA application_id=1396919898")
        db.execute("PRAGMA user_version=1")
    for path in (old, new):
        store = DurableStore(path)
        store.open()
        store.close()

    def tables(path: Path) -> dict[str, list[tuple[object, ...]]]:
        with closing(sqlite3.connect(path)) as db:
            names = [
                n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            ]
            return {n: db.execute(f"PRAGMA table_info({n})").fetchall() for n in sorted(names)}

    assert tables(new) == tables(old)
    assert {"packets", "quarantine", "meta", "parked", "settled"} <= set(tables(new))


def test_a_format_2_store_gains_the_parked_table_and_keeps_its_backlog(tmp_path: Path) -> None:
    path = tmp_path / "out.db"
    store = DurableStore(path)
    store.open()
    store.commit([(n, 0.0, body(n)) for n in (1, 2, 3)], [], 0)
    store.close()
    with closing(sqlite3.connect(path, isolation_level=None)) as db:  # as format 2 wrote it
        db.execute("DROP TABLE parked")
        db.execute("PRAGMA user_version=2")
    store = DurableStore(path)
    backlog = store.open()
    assert (backlog.count, backlog.next_seq, backlog.lost, backlog.note) == (3, 4, None, "")
    store.close()
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == FORMAT_VERSION
        assert db.execute("SELECT count(*) FROM parked").fetchone()[0] == 0


# -- the ledger's own failure modes --------------------------------------------------------


def test_a_crash_between_the_ledger_write_and_commit_reports_nothing_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ledger is written before COMMIT, with the new rows marked pending. A process that
    dies right there committed nothing: those rows were never accepted (the producer was
    never told), so they are not lost; the rows the commit would have deleted are still in
    the file and are delivered again."""
    path = tmp_path / "out.db"
    store = fill(path, 10)
    ledger = store._ledger
    assert ledger is not None
    write = ledger.write
    dead = False

    class Died(BaseException):
        """The process ends here: nothing after it runs (no rollback of the ledger)."""

    def write_then_die(state: LedgerState) -> None:
        nonlocal dead
        if dead:
            return
        write(state)
        if state.pending is not None:
            dead = True
            raise Died

    monkeypatch.setattr(ledger, "write", write_then_die)
    with pytest.raises(Died):
        store.commit([row(11, body(10)), row(12, body(11))], [(1, 3)], 0)
    store.close()
    owed = Ledger(ledger.path).read()
    assert owed is not None and owed.pending == (11, 12) and owed.runs == [(4, 12)]
    again = DurableStore(path)
    backlog = again.open()
    assert (backlog.count, backlog.next_seq, backlog.lost) == (10, 13, None)
    again.close()


def test_settled_rows_whose_delete_did_not_survive_are_delivered_again_not_lost(
    tmp_path: Path,
) -> None:
    path = tmp_path / "out.db"
    store = fill(path, 10)
    saved = path.read_bytes(), path.with_name("out.db-wal").read_bytes()
    store.commit([], [(1, 4)], 0)  # settled 1..4
    store.close()
    # roll the file back to before the delete (as a lost WAL tail would), ledger kept
    path.write_bytes(saved[0])
    path.with_name("out.db-wal").write_bytes(saved[1])
    path.with_name("out.db-shm").unlink(missing_ok=True)
    again = DurableStore(path)
    backlog = again.open()
    assert (backlog.count, backlog.lost) == (10, None)  # 1..4 again: duplicates, not loss
    again.close()


def test_a_ledger_left_behind_by_a_power_loss_is_said_never_taken_for_loss(
    tmp_path: Path,
) -> None:
    """A power loss can take the ledger writes made since its last flush while the store
    file kept its (fsync'd) commits. The rows deleted since are not lost; the store file
    records which ledger write its last commit matches, so the open knows the ledger is old
    and says it could not check."""
    path = tmp_path / "out.db"
    store = fill(path, 10)
    ledger = path.with_name("out.db.ledger")
    flushed = ledger.read_bytes()
    store.commit([], [(1, 6)], 0)  # settled, then the power went
    store.close()
    ledger.write_bytes(flushed)
    again = DurableStore(path)
    backlog = again.open()
    assert (backlog.count, backlog.lost) == (4, None)
    assert "older than the store file" in backlog.note
    again.close()
    third = DurableStore(path)  # the ledger written at that open is good again
    assert third.open().note == ""
    third.close()


@pytest.mark.parametrize("damage", ["torn", "deleted"])
def test_a_damaged_or_missing_ledger_is_said_never_taken_for_loss(
    tmp_path: Path, damage: str
) -> None:
    path = tmp_path / "out.db"
    fill(path, 10).close()
    ledger = path.with_name("out.db.ledger")
    if damage == "torn":
        ledger.write_bytes(b"\x00garbage" * (2 * SLOT_BYTES // 8))
    else:
        ledger.unlink()
    store = DurableStore(path)
    backlog = store.open()
    assert backlog.count == 10 and backlog.lost is None
    assert "could not check the store for lost packets" in backlog.note
    store.close()
    assert Ledger(ledger).read() is not None  # written anew


def test_a_torn_write_of_one_slot_leaves_the_other(tmp_path: Path) -> None:
    path = tmp_path / "out.db"
    store = fill(path, 10)
    store.commit([], [(1, 2)], 0)
    store.close()
    ledger = path.with_name("out.db.ledger")
    newest = Ledger(ledger).read()
    assert newest is not None
    slot = (newest.generation % 2) * SLOT_BYTES
    with ledger.open("r+b") as file:  # tear the newest record
        file.seek(slot + 20)
        file.write(b"\xff" * 8)
    older = Ledger(ledger).read()
    assert older is not None and older.generation == newest.generation - 1


def test_the_bodies_of_a_store_read_as_json_lines_one_packet_each(tmp_path: Path) -> None:
    """The recovery of a moved-aside file (docs/operations.md): `SELECT body FROM packets`
    gives every packet on a line of its own, batch rows included."""
    path = tmp_path / "out.db"
    fill(path, 300).close()  # one commit: a batch row of 256 packets and one of 44
    with closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT body FROM packets ORDER BY seq").fetchall()
    assert len(rows) == 2
    lines = b"\n".join(body for (body,) in rows).split(b"\n")
    assert [json.loads(line)["payload"] for line in lines] == [{"n": n} for n in range(300)]


def test_a_reader_in_another_process_never_takes_the_wal_from_under_a_new_store(
    tmp_path: Path,
) -> None:
    """A new store's first sync opened and closed a descriptor of the file, which dropped
    SQLite's own POSIX locks on it: a connection of another process (an operator's
    `sqlite3`) then found itself the file's last user when it closed, checkpointed and
    deleted the WAL the run still wrote to. Later commits went to the deleted WAL: unseen by
    every other process, and gone at a kill -9. Now every process sees every commit."""
    path = tmp_path / "out.db"
    store = DurableStore(path, "FULL")
    store.open()

    def seen_by_another_process() -> int:
        count = "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute(" + (
            "'SELECT count(*) FROM packets').fetchone()[0])"
        )
        done = subprocess.run(
            [sys.executable, "-c", count, str(path)], capture_output=True, text=True, check=True
        )
        return int(done.stdout)

    try:
        for seq in range(1, 4):
            store.commit([(seq, time.time(), b'{"n":%d}' % seq)], [], 0)
            assert seen_by_another_process() == seq
            assert path.with_name("out.db-wal").exists()
    finally:
        store.close()
