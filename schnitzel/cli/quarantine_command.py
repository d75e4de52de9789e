"""`schnitzel quarantine list|export|requeue STORE`: the quarantine table of a durable store,
read from its file (schnitzel/durable/quarantine.py decides what each entry took)."""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

__all__ = ["add_quarantine_parser", "run_quarantine"]

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
        "checksum back at the end of the backlog (the run must be stopped). Packets settled "
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
        say(f"schnitzel quarantine: no store file {str(path)!r}", err=True)
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
    from schnitzel.durable.quarantine_table import held_text
    from schnitzel.launch.output import print_json, print_table, say

    if as_json:
        print_json(
            {
                "store": str(path),
                "entries": [
                    {
                        "id": e.id,
                        "seqs": held_text(e.held),
                        "packets": e.packets,
                        "intact": e.intact,
                        "at": e.at,
                        "reason": e.reason,
                    }
                    for e in entries
                ],
            }
        )
        return
    if not entries:
        say(f"{path}: no quarantined packets")
        return
    rows = [
        (
            str(e.id),
            held_text(e.held) or "-",
            str(e.packets),
            "yes" if e.intact else "no",
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e.at)),
            e.reason[:REASON_CHARS] + ("..." if len(e.reason) > REASON_CHARS else ""),
        )
        for e in entries
    ]
    print_table(("ID", "STORE SEQS", "PACKETS", "INTACT", "AT", "REASON"), rows)
    say(
        f"{sum(e.packets for e in entries)} packets in {len(entries)} entries "
        "(`schnitzel quarantine export STORE ID`: their packets)"
    )


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
    from schnitzel.durable.quarantine import requeue_entries
    from schnitzel.durable.store import DurableStore, StoreError
    from schnitzel.errors import RuntimeStartError
    from schnitzel.launch.output import say

    store = DurableStore(path)
    try:
        backlog = store.open()
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
    say(
        f"requeued {count} packets of {len(set(ids))} entries at the end of the backlog of "
        f"{str(path)!r}; the next run delivers them"
    )
    return EXIT_OK
