"""The columns of a store's quarantine table that say which packets a whole-row entry took.

An entry is one packet (`seq`, its body alone), or a row taken whole (its body, sizes and
checksum as found): a row whose checksum failed when it was read, or a row set aside at open
(its seq range overlapped a row before it, or was not the packets it held). Such a row may
also hold packets settled out of it before (the `settled` table: delivered, parked,
displaced), so the entry says which store seqs it took, those still owed:

    quarantine: id, seq, last (the first and last seq it took), packets (how many),
                enqueued, body, sizes, checksum (as found), reason, at,
                row_seq (the first seq of the row its body holds; NULL: one packet, `seq`),
                held (the seqs it took as runs "5-9,13-40"; NULL: every seq of seq..last)

`row_seq` and `held` came after format 5 without changing its number: older code writes
and reads the table as before (its entries have them NULL), and a store gets the two
columns when it is created, migrated from an older format, or first takes a row whole.
`schnitzel/durable/quarantine.py` reads the entries back.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

__all__ = ["add_whole_row_columns", "held_runs", "held_text", "whole_row_columns"]

Run = tuple[int, int]
"""An inclusive range of store seqs."""

_WHOLE_ROW_COLUMNS = ("row_seq INTEGER", "held TEXT")


def whole_row_columns(db: sqlite3.Connection) -> bool:
    """Whether the quarantine table has `row_seq` and `held`."""
    have = {row[1] for row in db.execute("PRAGMA table_info(quarantine)")}
    return all(column.split()[0] in have for column in _WHOLE_ROW_COLUMNS)


def add_whole_row_columns(db: sqlite3.Connection) -> None:
    """Give the quarantine table `row_seq` and `held` if it lacks them (inside a transaction:
    a store's create, or the first whole row it quarantines)."""
    have = {row[1] for row in db.execute("PRAGMA table_info(quarantine)")}
    for column in _WHOLE_ROW_COLUMNS:
        if column.split()[0] not in have:
            db.execute(f"ALTER TABLE quarantine ADD COLUMN {column}")


def held_text(runs: Sequence[Run]) -> str:
    """Runs of seqs as `held` stores them: "5-9,13-40" ("" for none)."""
    return ",".join(f"{first}-{last}" for first, last in runs)


def held_runs(text: str) -> list[Run]:
    """The runs `held_text` wrote; ValueError for anything else (changed by hand)."""
    runs: list[Run] = []
    for part in text.split(",") if text else ():
        first, dash, last = part.partition("-")
        if not dash:
            raise ValueError(f"not a run of seqs: {part!r}")
        runs.append((int(first), int(last)))
    return runs
