"""What sealing a row's seq range into its checksum costs the store's thread (format 5).

A durable store checksums each row once when it writes it (`rows.pack`) and once when it reads
it back (`rows.row_intact`). Format 5 mixes the row's seq range into that checksum (a CRC-32 of
two numbers, XORed in); before, the checksum was the Adler-32 of the row's content alone
(`rows.row_checksum`, still computed first). Both are timed here in one process on the same
rows: CPU seconds per packet (this thread), best of the rounds, for rows of 256 packets of 150
bytes (what a busy inbox writes) and for one-packet rows (an idle inbox, a requeue), and the
ratio sealed / content alone.

Run: .venv/bin/python bench/bench_row_checksum.py [--rows 4000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from schnitzel.durable.rows import pack, row_checksum, row_intact, sealed

BODY = b'{"payload":"' + b"x" * 134 + b'"}'


def cpu_best(fn: Callable[[], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def measure(per_row: int, rows: int, rounds: int) -> None:
    packed = [
        pack(range(1 + i * per_row, 1 + (i + 1) * per_row), 0.0, [BODY] * per_row)
        for i in range(rows)
    ]

    intact: list[bool] = []

    def content_alone() -> None:
        for _first, _at, body, sums, _last, sizes in packed:
            row_checksum(body, sizes)  # written
            intact.append(row_checksum(body, sizes) == sums)  # read back

    def with_seq_range() -> None:
        for first, _at, body, sums, last, sizes in packed:
            sealed(row_checksum(body, sizes), first, last)  # written
            intact.append(row_intact(first, last, body, sizes, sums))  # read back

    base = cpu_best(content_alone, rounds)
    this = cpu_best(with_seq_range, rounds)
    packets = per_row * rows
    print(
        f"{per_row:>3} packets a row: content alone {base / packets * 1e6:.3f} us/packet, "
        f"sealed {this / packets * 1e6:.3f} us/packet, sealed/alone {this / base:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    measure(256, args.rows // 16, args.rounds)
    measure(1, args.rows * 16, args.rounds)


if __name__ == "__main__":
    main()
