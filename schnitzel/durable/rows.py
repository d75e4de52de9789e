"""Batch rows: several encoded packets in one row of a store's `packets` table.

A row holds the packets of consecutive store seqs `seq`..`last` (`last` NULL: one packet, as
every row of a format-3 store). Its `body` is their encoded forms joined by a newline, which
no encoded packet holds (JSON escapes it inside strings), so `SELECT body FROM packets` still
reads as JSON lines, one packet a line, as with one packet a row (the operator's way to
recover a moved-aside file, docs/operations.md); `sizes` is the length of each packet
(little-endian uint32s; NULL for one packet). Its `checksum` covers everything that decides
what the row delivers: the Adler-32 of `sizes` then `body` (a one-packet row's: of its body
alone), so a changed length is caught like a changed byte, with its seq range (`seq`, `last`)
mixed in (`sealed`), so a row moved to other seqs by hand is damaged too, not delivered under
seqs that are not its own. Rows written before format 5 carry the checksum of their content
alone (below `SEALED`): they are still read, checked as they were written (`row_intact`).
`enqueued` is not covered: it decides no delivery (only the backlog's age shown).

A row leaves the file only when every packet in it was settled (delivered, parked,
quarantined, displaced). Until then the packets settled out of it are recorded in the
`settled` table (inclusive seq ranges inside the row) in the same transaction that settles
them, so a crash never brings back a settled packet and never loses an unsettled one; the
row and its `settled` ranges are deleted together when its last packet settles.

    packets: seq (first), enqueued, body, checksum, last (NULL = seq), sizes (NULL = one)
    settled: first, last  -- packets of rows still in the file that were settled

`RowIndex` is the store's memory of which rows the file holds (their seq ranges), used to
tell, for each settled range, which rows it empties (deleted) and which it only cuts into
(a `settled` range written).
"""

from __future__ import annotations

import bisect
import sqlite3
import struct
import sys
import zlib
from array import array
from collections.abc import Iterator, Sequence

__all__ = [
    "ROW_MAX_BYTES",
    "ROW_MAX_PACKETS",
    "SEALED",
    "PackedRow",
    "RowIndex",
    "create_settled_table",
    "live_packets",
    "may_overlap",
    "merged_runs",
    "overlapping",
    "pack",
    "row_checksum",
    "row_intact",
    "sealed",
    "settled_runs",
    "unpack",
]

ROW_MAX_PACKETS = 256
"""Most packets one row holds: SQLite costs about 0.6 us per packet at 256 per row against
2.6 us at one (bench/bench_durable_breakdown.py); more saves little and makes a damaged row
take more packets with it."""
ROW_MAX_BYTES = 1 << 20
"""A row stops growing at this size (a packet larger than it gets a row of its own)."""

Run = tuple[int, int]
"""An inclusive range of store seqs."""
PackedRow = tuple[int, float, bytes, int, int | None, bytes | None]
"""(seq, enqueued, body, checksum, last, sizes) as inserted into `packets`."""

SEALED = 1 << 32
"""Set in the checksum of every row written by format 5 on: its seq range is mixed in. A
checksum below it is one of an older row, of its content alone (an Adler-32 is 32 bits)."""

_LITTLE = sys.byteorder == "little"
_RANGE = struct.Struct("<qq")


def pack(seqs: range, enqueued: float, bodies: Sequence[bytes]) -> PackedRow:
    """One row of the packets of `seqs` (consecutive), enqueued at the time of the first."""
    first = seqs[0]
    if len(bodies) == 1:
        body = bodies[0]
        return (first, enqueued, body, sealed(zlib.adler32(body), first, None), None, None)
    lengths = array("I", map(len, bodies))
    if not _LITTLE:
        lengths.byteswap()
    sizes = lengths.tobytes()
    body = b"\n".join(bodies)
    content = zlib.adler32(body, zlib.adler32(sizes))
    return (first, enqueued, body, sealed(content, first, seqs[-1]), seqs[-1], sizes)


def sealed(content: int, first: int, last: int | None) -> int:
    """The checksum stored with the row `first`..`last` whose content (sizes then body) has
    the Adler-32 `content`: its seq range as 32 bits (a CRC-32 of the two numbers; never 0,
    so a sealed checksum never equals the content's own) XORed in, marked by SEALED."""
    mixed = zlib.crc32(_RANGE.pack(first, -1 if last is None else last)) or 1
    return SEALED | (content ^ mixed)


def row_checksum(body: object, sizes: object) -> int:
    """The Adler-32 of a row's content, from its body and sizes as read (-1: not bytes)."""
    if not isinstance(body, bytes):
        return -1
    if sizes is None:
        return zlib.adler32(body)
    if not isinstance(sizes, bytes):
        return -1
    return zlib.adler32(body, zlib.adler32(sizes))


def row_intact(first: int, last: int | None, body: object, sizes: object, stored: object) -> bool:
    """Whether a row as read matches the checksum stored with it: its content and, for a row
    written by format 5 on, its seq range. An older row (its checksum below SEALED) is
    checked as it was written, on its content alone."""
    content = row_checksum(body, sizes)
    if content < 0 or not isinstance(stored, int):
        return False
    if stored >= SEALED:
        return stored == sealed(content, first, last)
    return stored == content


def unpack(first: int, last: int | None, body: bytes, sizes: bytes | None) -> list[bytes] | None:
    """The packets of a row, in seq order; None when its sizes do not fit its body or its
    seq range (a damaged row)."""
    if last is None or sizes is None:
        return [body] if last is None and sizes is None else None
    if len(sizes) != 4 * (last - first + 1):
        return None
    lengths = array("I")
    lengths.frombytes(sizes)
    if not _LITTLE:
        lengths.byteswap()
    if sum(lengths) + len(lengths) - 1 != len(body):
        return None
    out: list[bytes] = []
    at = 0
    for n in lengths:
        out.append(body[at : at + n])
        at += n + 1  # the newline between two packets
    return out


def packet_sizes(first: int, last: int | None, body_size: int, sizes: object) -> list[int]:
    """The size of each packet of a row (`body_size` long); when its sizes are damaged (they
    do not add up to its body), the body's size less its newlines shared out evenly."""
    n = 1 if last is None else max(last - first + 1, 1)
    if n > 1 and isinstance(sizes, bytes) and len(sizes) == 4 * n:
        lengths = array("I")
        lengths.frombytes(sizes)
        if not _LITTLE:
            lengths.byteswap()
        if sum(lengths) + n - 1 == body_size:
            return list(lengths)
    share, rest = divmod(max(body_size - (n - 1), 0), n)
    return [share + 1] * rest + [share] * (n - rest)


def may_overlap(db: sqlite3.Connection, batch_rows: Sequence[Run]) -> bool:
    """Whether any row of the file may start inside the seq range of a row before it, from
    its batch rows (seq order): two of them overlapping, or a run of adjacent ones holding
    other rows between its first and last seq (one count of row ids per run: the common
    file, rows of one run after another, costs one query, and a file of one-packet rows
    none). False is certain; True means `overlapping` must look at every row."""
    runs: list[tuple[int, int, int]] = []
    for first, last in batch_rows:
        if runs and first <= runs[-1][1]:
            return True
        if runs and first == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], last, runs[-1][2] + 1)
        else:
            runs.append((first, last, 1))
    for first, last, rows in runs:
        found = db.execute("SELECT count(*) FROM packets WHERE seq BETWEEN ? AND ?", (first, last))
        if found.fetchone()[0] != rows:
            return True
    return False


def overlapping(rows: Sequence[tuple[int, int | None]]) -> tuple[list[Run], list[Run]]:
    """Of rows (seq, last) in seq order, every row of several packets and any row that starts
    inside another's seq range: (the batch rows to keep, the rows to set aside), as seq
    ranges. A row overlapping one kept before it is set aside (the store never writes such
    a row: its seq or last was changed by hand); one-packet rows can only be overlapped, so
    only batch rows need be among `rows` for the answer to hold for the whole file."""
    keep: list[Run] = []
    aside: list[Run] = []
    top = 0
    for first, last in rows:
        end = first if last is None else last
        if first <= top:
            aside.append((first, end))
        elif last is not None:
            keep.append((first, last))
            top = last
    return keep, aside


def create_settled_table(db: sqlite3.Connection) -> None:
    """The ranges settled out of rows still in the file (inside a create or migrate)."""
    db.execute("CREATE TABLE IF NOT EXISTS settled (first INTEGER NOT NULL, last INTEGER NOT NULL)")


def settled_runs(db: sqlite3.Connection) -> list[Run]:
    """The seq ranges of the `settled` table, sorted, overlapping and adjacent ones joined."""
    return merged_runs(db.execute("SELECT first, last FROM settled ORDER BY first").fetchall())


def merged_runs(runs: list[Run]) -> list[Run]:
    """Sorted runs with overlapping and adjacent ones joined."""
    out: list[Run] = []
    for first, last in runs:
        if out and first <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out


class RowIndex:
    """The seq ranges of the rows in the file, sorted (each row's first and last seq)."""

    __slots__ = ("firsts", "lasts")

    def __init__(self, rows: Sequence[tuple[int, int]] = ()) -> None:
        self.firsts = [first for first, _last in rows]
        self.lasts = [last for _first, last in rows]

    def __len__(self) -> int:
        return len(self.firsts)

    def append(self, first: int, last: int) -> None:
        """A new row, above every row held."""
        if self.lasts and first <= self.lasts[-1]:
            raise ValueError(f"row {first}..{last} is not above the rows held ({self.lasts[-1]})")
        self.firsts.append(first)
        self.lasts.append(last)

    def overlapping(self, first: int, last: int) -> range:
        """The indexes of the rows holding any seq of first..last."""
        start = bisect.bisect_left(self.lasts, first)
        stop = bisect.bisect_right(self.firsts, last)
        return range(start, max(start, stop))

    def remove(self, indexes: Sequence[int]) -> None:
        """Forget the rows at `indexes` (ascending)."""
        for i in reversed(indexes):
            del self.firsts[i], self.lasts[i]

    def row_of(self, seq: int) -> int | None:
        """The index of the row holding `seq`, or None."""
        i = bisect.bisect_left(self.lasts, seq)
        if i < len(self.firsts) and self.firsts[i] <= seq:
            return i
        return None


def live_packets(db: sqlite3.Connection) -> Iterator[tuple[int, float, bytes]]:
    """Every packet a store file holds and has not settled, (seq, enqueued, encoded packet)
    in seq order, read without the store (for tools and tests; checksums are not checked;
    a row whose sizes are damaged yields its body whole under its first seq)."""
    settled = settled_runs(db)
    for first, enqueued, stored, last, sizes in db.execute(
        "SELECT seq, enqueued, body, last, sizes FROM packets ORDER BY seq"
    ):
        body = bytes(stored)
        packets = unpack(first, last, body, sizes)
        if packets is None:
            packets = [body]
        for offset, packet in enumerate(packets):
            seq = first + offset
            if not any(a <= seq <= b for a, b in settled):
                yield seq, enqueued, packet
