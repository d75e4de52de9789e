"""`schnitzel quarantine list|export|requeue STORE`: the quarantine table of a durable store,
read from its file (schnitzel/durable/quarantine.py decides what each entry took)."""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

__all__ = ["add_quarantine_parser", "print_entries", "requeued_words", "run_quarantine"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
REASON_CHARS = 60
"""How much of an entry's reason a listing shows (`--json` has all of it)."""


def add_quarantine_parser(commands: Any) -> None:
    """`schnitzel quarantine {list,export,requeue}` under the `schnitzel` command."""
    quarantine = commands.add_parser(
        "quarantine",
        help="list, export or requeue the packets a durable store quarantined",
        description="A durable store moves packets it cannot deliver as they are (a row "
        "changed on disk, a packet that no longer decodes) to its quarantine table. `list` "
        "shows its entries, `export` prints the packets they took, one encoded packet a line "
        "(a `jsonl` source re-sends them), `requeue` puts those of entries that match their "
        "checksum back at the end of the backlog (the run must be stopped; on a running graph, "
        "`schnitzel ctl quarantine requeue` does it live). Packets settled "
        "out of a row before it was quarantined are never exported or requeued with it.",
    )
    actions = quarantine.add_subparsers(dest="quarantine_action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="the entries, and which store seqs each took")
    listing.add_argument("store", metavar="STORE", help="the store file (inbox.durable.path)")
    listing.add_argument("--json", action="store_true", help="print the entries as JSON")
    export = actions.add_parser(
        "export", help="print the packets entries took, one encoded packet a line"
    )
    export.add_argument("store", metavar="STORE", help="the store file (inbox.durable.path)")
    export.add_argument("ids", metavar="ID", type=int, nargs="*", help="entries (default all)")
    export.add_argument(
        "--damaged",
        action="store_true",
        help="also the packets of entries that do not match their checksum (changed on "
        "disk: look at them before re-sending any)",
    )
    requeue = actions.add_parser(
        "requeue", help="put the packets entries took back at the end of the backlog"
    )
    requeue.add_argument("store", metavar="STORE", help="the store file (inbox.durable.path)")
    requeue.add_argument("ids", metavar="ID", type=int, nargs="+", help="entries to requeue")


def run_quarantine(args: argparse.Namespace) -> int:
    """Run `schnitzel quarantine list|export|requeue`; the exit code."""
    from schnitzel.launch.output import say

    path = Path(args.store)
    if not path.is_file():
        say(
            f"schnitzel quarantine: no store file {str(path)!r}; give the path of a durable "
            "store (a node's inbox.durable.path, relative to its graph file)",
            err=True,
        )
        return EXIT_USAGE
    if args.quarantine_action == "requeue":
        return _requeue(path, args.ids)
    import sqlite3  # not at the top: `schnitzel validate` never loads it

    from schnitzel.durable.quarantine import quarantine_entries

    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True)) as db:
            db.execute("PRAGMA query_only=ON")
            entries = quarantine_entries(db, args.ids if args.quarantine_action == "export" else ())
    except sqlite3.DatabaseError as exc:
        say(
            f"schnitzel quarantine: cannot read the quarantine table of {str(path)!r}: {exc}; "
            "is it a durable store (inbox.durable.path)?",
            err=True,
        )
        return EXIT_FAILED
    if args.quarantine_action == "list":
        _print_list(path, entries, as_json=args.json)
        return EXIT_OK
    return _export(path, entries, args.ids, args.damaged)


def _print_list(path: Path, entries: list[Any], as_json: bool) -> None:
    from schnitzel.launch.output import print_json

    shown = [entry.to_json() for entry in entries]
    if as_json:
        print_json({"store": str(path), "entries": shown})
        return
    print_entries(str(path), shown)


def print_entries(store: str, entries: list[dict[str, Any]]) -> None:
    """A store's quarantine entries (`QuarantineEntry.to_json`) as a table, with the words
    both `schnitzel quarantine list` and `schnitzel ctl quarantine list` say."""
    from schnitzel.launch.output import print_table, say

    if not entries:
        say(f"{store}: no quarantined packets")
        return
    rows = [
        (
            str(e.get("id")),
            str(e.get("seqs") or "-"),
            str(e.get("packets")),
            "yes" if e.get("intact") else "no",
            _utc(e.get("at")),
            _cut(_without_store(str(e.get("reason")))),
        )
        for e in entries
    ]
    print_table(("ID", "STORE SEQS", "PACKETS", "INTACT", "AT", "REASON"), rows)
    packets = sum(e.get("packets") or 0 for e in entries)
    how = "`schnitzel quarantine export STORE ID`: their packets"
    if not all(e.get("intact") for e in entries):
        how += "; of one not intact, with --damaged"
    say(f"{packets} packets in {_entries(len(entries))} ({how})")


def requeued_words(packets: int, entries: int, store: str, then: str) -> str:
    """What a requeue of quarantine entries says it did; `then`: who delivers the packets."""
    return (
        f"requeued {packets} packets of {_entries(entries)} at the end of the backlog of "
        f"{store!r}; {then}"
    )


def _entries(n: int) -> str:
    return "1 entry" if n == 1 else f"{n} entries"


def _utc(at: Any) -> str:
    if not isinstance(at, int | float):
        return str(at)
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def _without_store(reason: str) -> str:
    """A reason without the store's path the row's own words begin with ("row 4-10 of
    /var/lib/.../out.db: it does not match ..."): the table is of that store already, and
    the path took the whole column."""
    where, of, rest = reason.partition(" of ")
    if of and where.startswith("row ") and ": " in rest:
        return f"{where}: {rest.split(': ', 1)[1]}"
    return reason


def _cut(reason: str) -> str:
    return reason[:REASON_CHARS] + ("..." if len(reason) > REASON_CHARS else "")


def _export(path: Path, entries: list[Any], ids: list[int], damaged: bool) -> int:
    from schnitzel.launch.output import say

    status = EXIT_OK
    for entry_id in sorted(set(ids) - {e.id for e in entries}):
        say(f"schnitzel quarantine: {str(path)!r} has no entry {entry_id}", err=True)
        status = EXIT_FAILED
    out = sys.stdout.buffer
    for entry in entries:
        if entry.parts is None:
            say(
                f"entry {entry.id}: which packets of its row it took is not known (written "
                "before entries said so); its body is in the table: `sqlite3 STORE 'SELECT "
                f"body FROM quarantine WHERE id = {entry.id}'`",
                err=True,
            )
            status = EXIT_FAILED
            continue
        if not entry.intact and not damaged:
            say(
                f"entry {entry.id}: skipped, it does not match its checksum (changed on disk); "
                "--damaged exports it too",
                err=True,
            )
            continue
        for _seq, body in sorted(entry.parts.items()):
            out.write(body + b"\n")
    out.flush()
    return status


def _requeue(path: Path, ids: list[int]) -> int:
    from schnitzel.durable.lock import StoreInUse
    from schnitzel.durable.quarantine import requeue_entries
    from schnitzel.durable.store import DurableStore, StoreError
    from schnitzel.errors import RuntimeStartError
    from schnitzel.launch.output import say

    store = DurableStore(path)
    try:
        backlog = store.open()
    except StoreInUse as exc:  # a run holds it: it requeues itself, asked over its socket
        ids_text = " ".join(f"--entry {i}" for i in dict.fromkeys(ids))
        say(
            f"schnitzel quarantine: {exc}; while that run goes on, `schnitzel ctl quarantine "
            f"requeue --node NODE {ids_text}` has it requeue them live (NODE: the node whose "
            "`inbox.durable.path` this is)",
            err=True,
        )
        return EXIT_FAILED
    except (RuntimeStartError, StoreError) as exc:  # StoreError: e.g. WAL mode refused
        say(f"schnitzel quarantine: {exc}", err=True)
        return EXIT_FAILED
    # This open checked the store as a run's would and wrote its ledger anew: what it found
    # is said here, or no one would hear of it (the next run's open no longer can).
    found = [
        f"moved the unreadable store to {str(backlog.quarantined)!r}"
        if backlog.quarantined
        else "",
        backlog.lost.words() if backlog.lost else "",
        backlog.set_aside_why,
        backlog.note,
    ]
    for words in filter(None, found):
        say(f"schnitzel quarantine: durable store {str(path)!r}: {words}", err=True)
    try:
        count = requeue_entries(store, backlog.next_seq, ids)
    except StoreError as exc:
        say(f"schnitzel quarantine: {exc}", err=True)
        return EXIT_FAILED
    finally:
        store.close()
    say(requeued_words(count, len(set(ids)), str(path), "the next run delivers them"))
    return EXIT_OK
