"""What a durable store owes, kept in a small file apart from SQLite (`<store>.ledger`).

SQLite cannot tell that commits are missing: a damaged or deleted WAL, or a truncated file,
opens as a healthy store that simply holds less. The ledger is the store's own account of
which rows (store sequence numbers) it has accepted and not yet settled, so an open can
compare the two and name what is missing.

Written on the store's thread around every commit:

1. inside the transaction, before COMMIT: the state after the commit, with the seqs it
   inserts marked `pending`; the transaction also records this write's generation in the
   store file (`meta.ledger_gen`);
2. after COMMIT returned (when it inserted rows): the same state without `pending`.

At open, the rows of a `pending` range count as owed only if any of them is in the file (a
transaction is all or nothing): a crash between 1 and COMMIT lost nothing that was accepted.
Rows in the file the ledger does not owe (settled, and the delete did not survive) are
delivered again: at-least-once.

The writes are not flushed one by one (a process crash, `kill -9`, keeps them: they are in
the page cache); the file is fdatasync'd at most FLUSH_EVERY_S after a write, at open and at
close. A power loss can therefore leave a ledger older than the store file; its generation
is then below the file's `ledger_gen`, and the open says it could not check instead of
taking rows settled meanwhile for lost ones.

The file has two fixed slots written in turn, each with its own length and CRC-32 and a
generation number, so a torn write (power loss mid-write) leaves the other slot readable.
"""

from __future__ import annotations

import bisect
import errno
import os
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from schnitzel.errors import SchnitzelError

__all__ = ["LEDGER_SUFFIX", "Ledger", "LedgerState", "LedgerUnreadable", "Owed", "Run", "missing"]

LEDGER_SUFFIX = ".ledger"
SLOT_BYTES = 64 << 10
"""Each of the two slots; a ledger whose ranges do not fit keeps the count only."""
FLUSH_EVERY_S = 1.0
"""Longest time a ledger write stays only in the page cache while commits go on."""
_HEADER = 12  # magic (4) + length (4) + crc32 (4)
_MAGIC = b"SZL1"

Run = tuple[int, int]
"""An inclusive range of store sequence numbers (first, last)."""


class Owed:
    """The set of seqs a store holds, as sorted, disjoint, non-adjacent runs."""

    __slots__ = ("count", "firsts", "lasts")

    def __init__(self, runs: Iterable[Run] = ()) -> None:
        self.firsts: list[int] = []
        self.lasts: list[int] = []
        self.count = 0
        for first, last in runs:
            self.add(first, last)

    def runs(self) -> list[Run]:
        return list(zip(self.firsts, self.lasts, strict=True))

    @property
    def high(self) -> int:
        """The highest seq owed, 0 when none."""
        return self.lasts[-1] if self.lasts else 0

    def add(self, first: int, last: int) -> None:
        """Add the seqs first..last, which are all higher than any owed (new rows)."""
        if last < first:
            return
        if self.lasts and first <= self.lasts[-1]:
            raise ValueError(f"seqs {first}..{last} are not above those owed ({self.lasts[-1]})")
        if self.lasts and first == self.lasts[-1] + 1:
            self.lasts[-1] = last
        else:
            self.firsts.append(first)
            self.lasts.append(last)
        self.count += last - first + 1

    def remove(self, first: int, last: int) -> int:
        """Remove the seqs first..last (those owed); return how many were owed."""
        firsts, lasts = self.firsts, self.lasts
        i = bisect.bisect_left(lasts, first)  # the first run that ends at or after `first`
        removed = 0
        while i < len(firsts) and firsts[i] <= last:
            a, b = firsts[i], lasts[i]
            lo, hi = max(a, first), min(b, last)
            removed += hi - lo + 1
            if a < lo and b > hi:  # split in two
                lasts[i] = lo - 1
                firsts.insert(i + 1, hi + 1)
                lasts.insert(i + 1, b)
                break
            if a < lo:
                lasts[i] = lo - 1
                i += 1
            elif b > hi:
                firsts[i] = hi + 1
                break
            else:
                del firsts[i], lasts[i]
        self.count -= removed
        return removed

    def within(self, first: int, last: int) -> list[Run]:
        """The owed seqs of first..last, as runs."""
        firsts, lasts = self.firsts, self.lasts
        i = bisect.bisect_left(lasts, first)
        out: list[Run] = []
        while i < len(firsts) and firsts[i] <= last:
            out.append((max(firsts[i], first), min(lasts[i], last)))
            i += 1
        return out

    def any_within(self, first: int, last: int) -> bool:
        """Whether any seq of first..last is owed."""
        i = bisect.bisect_left(self.lasts, first)
        return i < len(self.firsts) and self.firsts[i] <= last

    def take(self, after: int, limit: int) -> list[Run]:
        """The first `limit` owed seqs above `after`, as runs."""
        firsts, lasts = self.firsts, self.lasts
        i = bisect.bisect_right(lasts, after)
        out: list[Run] = []
        while i < len(firsts) and limit > 0:
            first = max(firsts[i], after + 1)
            last = min(lasts[i], first + limit - 1)
            out.append((first, last))
            limit -= last - first + 1
            i += 1
        return out

    def copy(self) -> Owed:
        other = Owed()
        other.firsts, other.lasts, other.count = list(self.firsts), list(self.lasts), self.count
        return other


def missing(expected: Iterable[Run], present: Iterable[Run]) -> list[Run]:
    """The runs of `expected` not covered by `present` (both sorted and disjoint)."""
    gaps: list[Run] = []
    have = list(present)
    j = 0
    for first, last in expected:
        cursor = first
        while j < len(have) and have[j][1] < cursor:
            j += 1
        k = j
        while cursor <= last:
            if k >= len(have) or have[k][0] > last:
                gaps.append((cursor, last))
                break
            a, b = have[k]
            if a > cursor:
                gaps.append((cursor, a - 1))
            cursor = max(cursor, b + 1)
            k += 1
    return gaps


@dataclass
class LedgerState:
    """One write of the ledger: which store, which rows it owes."""

    store_id: str
    high_seq: int
    """The highest seq the store ever committed."""
    owed_count: int
    runs: list[Run] | None
    """The owed seqs; None when too many runs to keep (then only the count is checked)."""
    pending: Run | None = None
    """Seqs of a commit under way: owed only if any of them is in the file."""
    generation: int = 0

    def encode(self) -> bytes:
        """One line of text: `store_id generation high owed pending runs`, where pending
        is `a-b` or `-` and runs `a-b,c-d` or `*` (not kept). Built by hand: it is written
        twice per commit, and json.dumps cost four times as much."""
        pending = f"{self.pending[0]}-{self.pending[1]}" if self.pending else "-"
        runs = "*" if self.runs is None else ",".join(f"{a}-{b}" for a, b in self.runs)
        return (
            f"{self.store_id} {self.generation} {self.high_seq} {self.owed_count} {pending} {runs}"
        ).encode()

    @classmethod
    def decode(cls, data: bytes) -> LedgerState:
        store_id, generation, high, owed, pending, runs = data.decode("ascii").split(" ")
        return cls(
            store_id=store_id,
            high_seq=int(high),
            owed_count=int(owed),
            runs=None if runs == "*" else [_run(text) for text in runs.split(",") if text],
            pending=None if pending == "-" else _run(pending),
            generation=int(generation),
        )


def _run(text: str) -> Run:
    first, last = text.split("-")
    return int(first), int(last)


class LedgerUnreadable(SchnitzelError):
    """Neither slot of the ledger file holds a valid record."""


class Ledger:
    """The ledger file of one store: read once at open, then written around each commit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._generation = 0
        self._flushed_at = 0.0
        self._dirty = False

    @property
    def next_generation(self) -> int:
        """The generation the next write will carry."""
        return self._generation + 1

    def skip_to(self, generation: int) -> None:
        """Let the next write carry a generation above `generation`."""
        self._generation = max(self._generation, generation)

    def read(self) -> LedgerState | None:
        """The newest valid record; None when there is no ledger file (or it is empty).
        Raises LedgerUnreadable when the file exists but no slot is valid."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        if not data.strip(b"\0"):
            return None
        best: LedgerState | None = None
        for offset in (0, SLOT_BYTES):
            state = _parse_slot(data[offset : offset + SLOT_BYTES])
            if state is not None and (best is None or state.generation > best.generation):
                best = state
        if best is None:
            raise LedgerUnreadable(f"ledger {str(self.path)!r} has no valid record")
        self._generation = best.generation
        return best

    def open(self) -> None:
        """Open the file for writing (created if missing); raises OSError if it cannot be."""
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)

    def write(self, state: LedgerState) -> None:
        """Write `state` into the older slot (not flushed: see `flush`)."""
        fd = self._fd
        assert fd is not None, "ledger write before open"
        self._generation += 1
        state.generation = self._generation
        body = state.encode()
        if len(body) + _HEADER > SLOT_BYTES:  # too fragmented to list: keep the count
            state.runs = None
            body = state.encode()
        record = _MAGIC + len(body).to_bytes(4, "big") + zlib.crc32(body).to_bytes(4, "big")
        record += body
        written = os.pwrite(fd, record, (self._generation % 2) * SLOT_BYTES)
        self._dirty = True
        if written != len(record):  # a full file system writes what fits and says no more
            raise OSError(
                errno.ENOSPC, f"ledger write cut short ({written} of {len(record)} bytes)"
            )

    @property
    def generation(self) -> int:
        """The generation of the last write."""
        return self._generation

    def flush(self, unless_recent: bool = False) -> int | None:
        """fdatasync what was written; with `unless_recent`, only if the last flush is at
        least FLUSH_EVERY_S old. Returns the generation now on disk, or None if nothing was
        flushed. Both slots are on disk then: this generation and the one before it."""
        if self._fd is None or not self._dirty:
            return None
        now = time.monotonic()
        if unless_recent and now - self._flushed_at < FLUSH_EVERY_S:
            return None
        os.fdatasync(self._fd)
        self._flushed_at, self._dirty = now, False
        return self._generation

    def close(self) -> None:
        if self._fd is not None:
            try:
                self.flush()
            finally:
                os.close(self._fd)
                self._fd = None


def _parse_slot(slot: bytes) -> LedgerState | None:
    if len(slot) < _HEADER or slot[:4] != _MAGIC:
        return None
    size = int.from_bytes(slot[4:8], "big")
    crc = int.from_bytes(slot[8:12], "big")
    body = slot[_HEADER : _HEADER + size]
    if len(body) != size or zlib.crc32(body) != crc:
        return None
    try:
        return LedgerState.decode(body)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None
