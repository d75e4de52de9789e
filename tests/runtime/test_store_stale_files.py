"""The durable store's side files after a crash or an operator's mistake: a -shm left without
its -wal (the WAL deleted after a kill -9) and a deleted .lock file. Real files, real SQLite,
real processes killed -9."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from schnitzel.durable.store import DurableStore
from schnitzel.errors import RuntimeStartError
from tests.runtime.test_store_files import REPO, body, count, fill, row

READER = """
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
packets = "SELECT sum(coalesce(last, seq) - seq + 1) FROM packets"  # batch rows: seq..last
print(db.execute(packets).fetchone()[0], flush=True)
sys.stdin.read()
"""
"""Another program reading the store (a monitor, an sqlite3 shell), its connection kept open."""

KILLED_AFTER_COMMIT = """
import os, signal, sys
from pathlib import Path
from tests.runtime.test_store_files import body, fill, row
path = Path(sys.argv[1])
fill(path, 5).close()                        # rows 1..5 checkpointed into the file itself
store = __import__("schnitzel.durable.store", fromlist=["DurableStore"]).DurableStore(path)
store.open()
store.commit([row(seq, body(seq - 1)) for seq in range(6, 11)], [], 0)   # 6..10: WAL only
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_shm_left_without_its_wal_is_removed_and_the_loss_reported_on_first_open(
    tmp_path: Path,
) -> None:
    """The review's reproduction: kill -9, the -wal deleted, the -shm left. The first open
    used to fail with 'disk I/O error' (the -shm indexes a WAL that is gone)."""
    store = tmp_path / "out.db"
    child = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_COMMIT, str(store)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=REPO,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == -9, child.stderr.decode()
    wal, shm = store.with_name("out.db-wal"), store.with_name("out.db-shm")
    assert wal.exists() and shm.exists()
    # A reader keeps the -shm in use, so SQLite does not rebuild it: the review's case
    # (its script polled the row count and left its connection open).
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(store)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert reader.stdout is not None and reader.stdout.readline() == b"10\n"
        wal.unlink()
        opened = DurableStore(store)
        backlog = opened.open()
    finally:
        reader.kill()
        reader.wait(30)
    try:
        assert backlog.count == 5 and backlog.quarantined is None
        assert backlog.lost is not None
        assert (backlog.lost.count, backlog.lost.first_seq, backlog.lost.last_seq) == (5, 6, 10)
        assert backlog.next_seq == 11  # the lost seqs are never handed out again
    finally:
        opened.close()
    assert count(store) == 5


def test_a_shm_with_its_wal_is_kept_and_nothing_is_lost(tmp_path: Path) -> None:
    """The control: the same kill -9 without deleting anything loses nothing."""
    store = tmp_path / "out.db"
    child = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_COMMIT, str(store)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=REPO,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == -9, child.stderr.decode()
    opened = DurableStore(store)
    backlog = opened.open()
    opened.close()
    assert (backlog.count, backlog.lost) == (10, None)


def test_deleting_the_lock_file_does_not_let_a_second_run_open_the_store(tmp_path: Path) -> None:
    """The store file itself is flock()ed: with its .lock side file deleted (the review saw two
    runs then share a store), a second open is still refused, naming the holder."""
    store = tmp_path / "st" / "out.db"
    holder = fill(store, 3)
    try:
        store.with_name("out.db.lock").unlink()
        with pytest.raises(RuntimeStartError, match=rf"in use .*pid {os.getpid()} holds a lock"):
            DurableStore(store).open()
        holder.commit([row(4, body(3))], [], 0)  # the holder goes on, alone
    finally:
        holder.close()
    again = DurableStore(store)
    assert again.open().count == 4  # closed: the next run gets it
    again.close()
    assert count(store) == 4


def test_the_store_file_lock_follows_a_file_moved_aside(tmp_path: Path) -> None:
    """An unreadable file is quarantined and a new one made: the lock must hold the new one."""
    store = tmp_path / "out.db"
    store.write_bytes(b"this is not a SQLite database, it is long enough to be looked at" * 100)
    holder = DurableStore(store)
    assert holder.open().quarantined is not None
    try:
        store.with_name("out.db.lock").unlink()
        with pytest.raises(RuntimeStartError, match="in use"):
            DurableStore(store).open()
    finally:
        holder.close()


def test_a_hard_link_to_an_open_store_is_refused(tmp_path: Path) -> None:
    """The lock on the store file itself is on its inode: another name for it is refused too."""
    store = tmp_path / "a" / "out.db"
    holder = fill(store, 2)
    (tmp_path / "b").mkdir()
    os.link(store, tmp_path / "b" / "out.db")
    try:
        with pytest.raises(RuntimeStartError, match=rf"in use .*pid {os.getpid()} holds a lock"):
            DurableStore(tmp_path / "b" / "out.db").open()
    finally:
        holder.close()
