"""`schnitzel quarantine list|export|requeue STORE` as an operator runs it, on store files with
a row set aside at open (3 of its 10 packets settled before) and a damaged row: the entries
name the seqs they took, export prints only those packets, requeue puts only those back (the
run stopped), and nothing settled before is ever given again."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

from schnitzel.durable.rows import live_packets
from schnitzel.durable.store import DurableStore
from tests.conftest import run_cli
from tests.runtime.test_store_damaged_rows import change_one_byte, edited_by_hand, new_rows


def set_aside_at_open(path: Path) -> None:
    """A store whose 10-packet row (3 settled) had its `last` raised by hand, opened once:
    one quarantine entry that took store seqs 4-10."""
    edited_by_hand(path, [(1, 10)], "UPDATE packets SET last = 1000 WHERE seq = 1", settled=(1, 3))
    store = DurableStore(path)
    store.open()
    store.close()


def payload_numbers(lines: str) -> list[int]:
    return [json.loads(line)["payload"]["n"] for line in lines.splitlines()]


def test_list_names_the_seqs_an_entry_took_and_export_prints_only_those(
    tmp_path: Path,
) -> None:
    path = tmp_path / "out.db"
    set_aside_at_open(path)
    listed = run_cli("quarantine", "list", str(path), "--json")
    assert listed.returncode == 0, listed.stderr
    [entry] = json.loads(listed.stdout)["entries"]
    assert (entry["seqs"], entry["packets"], entry["intact"]) == ("4-10", 7, True)
    table = run_cli("quarantine", "list", str(path))
    assert "4-10" in table.stdout and "7 packets in 1 entry (" in table.stdout
    exported = run_cli("quarantine", "export", str(path), str(entry["id"]))
    assert exported.returncode == 0, exported.stderr
    assert payload_numbers(exported.stdout) == list(range(4, 11))  # not 1-3: delivered


def test_a_damaged_entry_is_exported_only_when_asked_and_never_requeued(tmp_path: Path) -> None:
    path = tmp_path / "out.db"
    store = DurableStore(path)
    store.open()
    store.commit(new_rows(1, 12), [], 0)
    store.commit([], [(1, 2)], 0)
    store.close()
    change_one_byte(path, 1)  # in packet 1, settled
    store = DurableStore(path)
    store.open()
    store.read(100)
    store.close()
    table = run_cli("quarantine", "list", str(path)).stdout
    # The reason's own words, not the store's path again (it filled the column before).
    assert "row 1-12: it does not match its checksum" in table and str(path) not in table
    skipped = run_cli("quarantine", "export", str(path))
    assert skipped.returncode == 0 and skipped.stdout == ""
    assert "does not match its checksum" in skipped.stderr and "--damaged" in skipped.stderr
    damaged = run_cli("quarantine", "export", str(path), "--damaged")
    assert payload_numbers(damaged.stdout) == list(range(3, 13))
    refused = run_cli("quarantine", "requeue", str(path), "1")
    assert refused.returncode == 1 and "cannot be vouched for" in refused.stderr
    assert "in 1 entry (" in run_cli("quarantine", "list", str(path)).stdout  # still there


def test_requeue_puts_back_only_the_packets_the_entry_took(tmp_path: Path) -> None:
    path = tmp_path / "out.db"
    set_aside_at_open(path)
    done = run_cli("quarantine", "requeue", str(path), "1")
    assert done.returncode == 0, done.stderr
    assert "requeued 7 packets" in done.stdout
    with closing(sqlite3.connect(path)) as db:
        backlog = [body for _seq, _at, body in live_packets(db)]
    assert payload_numbers(b"\n".join(backlog).decode()) == list(range(4, 11))
    assert "no quarantined packets" in run_cli("quarantine", "list", str(path)).stdout


def test_requeue_is_refused_while_a_run_holds_the_store(tmp_path: Path) -> None:
    path = tmp_path / "out.db"
    set_aside_at_open(path)
    running = DurableStore(path)
    running.open()
    try:
        refused = run_cli("quarantine", "requeue", str(path), "1")
    finally:
        running.close()
    assert refused.returncode == 1 and "in use by another running schnitzel" in refused.stderr
    assert "in 1 entry (" in run_cli("quarantine", "list", str(path)).stdout


def test_a_path_that_is_no_store_is_said(tmp_path: Path) -> None:
    missing = run_cli("quarantine", "list", str(tmp_path / "nothing.db"))
    assert missing.returncode == 2 and "no store file" in missing.stderr
    other = tmp_path / "other.db"
    other.write_text("not a database")
    unreadable = run_cli("quarantine", "export", str(other))
    assert unreadable.returncode == 1 and "is it a durable store" in unreadable.stderr


def test_what_the_requeue_s_open_of_the_store_finds_is_said(tmp_path: Path) -> None:
    """`requeue` opens the store as a run does, which checks it and writes its ledger anew:
    a row it sets aside (or a loss) is said on stderr, since the next run no longer can."""
    path = tmp_path / "out.db"
    edited_by_hand(path, [(1, 10)], "UPDATE packets SET last = 1000 WHERE seq = 1", settled=(1, 3))
    done = run_cli("quarantine", "requeue", str(path), "1")
    assert done.returncode == 0, done.stderr
    assert "7 packets of rows whose seq ranges" in done.stderr
    assert "requeued 7 packets" in done.stdout


def test_a_format_3_store_not_yet_migrated_is_listed_and_exported(tmp_path: Path) -> None:
    """A store an older schnitzel wrote (format 3: quarantine entries of one packet, without
    `last`, `sizes`, `packets`) is read as it is: the operator may look before any run of
    this version migrated it, and the command changes nothing."""
    from tests.runtime.test_store_format3 import format3_store

    path = format3_store(tmp_path)
    listed = run_cli("quarantine", "list", str(path), "--json")
    assert listed.returncode == 0, listed.stderr
    [entry] = json.loads(listed.stdout)["entries"]
    assert (entry["seqs"], entry["packets"], entry["intact"]) == ("9-9", 1, False)
    exported = run_cli("quarantine", "export", str(path), "--damaged")
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout == '{"n":-1}\n'  # what is left of it: changed on disk
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 3
