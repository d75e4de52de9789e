"""`read_json` (schnitzel/contract/json_input.py) against `json.loads` on the messages it reads
most: a small sensor reading, a small event with a string, a reading with an escaped emoji
(the surrogate check runs), and a 1000-line NDJSON body read line by line (http_ingest), in
one run. Reports ratios to `json.loads` of the same bytes, and strict mode's against how it
read before (`json.loads` with hooks, which makes a decoder on each call, and the surrogate
check re-encoding every message holding a pair).
Run: .venv/bin/python bench/bench_read_json.py
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _timing import best_of

from schnitzel import read_json
from schnitzel.contract.json_input import _finite_float, _no_constant

N = 100_000
MESSAGES = {
    "reading": b'{"sensor": "t1", "ts": 1765000000.123, "temp_c": 21.5, "rh": 0.43}',
    "event": b'{"kind": "door", "id": 42, "open": true, "site": "north gate"}',
    "emoji": b'{"note": "ok \\ud83d\\ude00", "n": 7, "v": 0.5}',
}
BODY = b"\n".join([MESSAGES["reading"]] * 1000)


def strict_before(data: bytes) -> object:
    """Strict mode as it was (its surrogate check is left out: before, it was costlier)."""
    return json.loads(data, parse_constant=_no_constant, parse_float=_finite_float)


def per_call(fn: Callable[[bytes], object], data: bytes) -> float:
    """Seconds per call, best of 5."""

    def loop() -> None:
        for _ in range(N):
            fn(data)

    return best_of(loop) / N


def per_body(fn: Callable[[bytes], object]) -> float:
    def loop() -> None:
        for _ in range(N // 1000):
            for line in BODY.split(b"\n"):
                fn(line)

    return best_of(loop) / (N // 1000)


def main() -> None:
    def strict(data: bytes) -> object:
        return read_json(data)

    def lenient(data: bytes) -> object:
        return read_json(data, strict=False)

    header = ("message", "json.loads", "strict", "x", "strict=False", "x", "before", "now/before")
    print("{:<10} {:>12} {:>12} {:>6} {:>13} {:>6} {:>12} {:>10}".format(*header))
    fns = (json.loads, strict, lenient, strict_before)
    rows = [
        (name, [per_call(fn, data) * 1e6 for fn in fns], "us") for name, data in MESSAGES.items()
    ]
    rows.append(("ndjson1000", [per_body(fn) * 1e3 for fn in fns], "ms"))
    for name, (base, now, lax, before), unit in rows:
        print(
            f"{name:<10} {base:>10.2f}{unit} {now:>10.2f}{unit} {now / base:>5.2f}x "
            f"{lax:>11.2f}{unit} {lax / base:>5.2f}x {before:>10.2f}{unit} {now / before:>9.2f}x"
        )


if __name__ == "__main__":
    main()
