"""Instructions per packet of encoding what a durable inbox takes in (valgrind, callgrind).

A durable inbox encodes each batch it admits with `encode_batch_bytes`
(contract/batch_encoding.py). This counts the instructions per packet of that against codec's
`encode_packet_bytes` packet by packet (its baseline, the same bytes), for batches of 256
packets as `synthetic` makes them (`StreamPacket.new_many`, each payload a copy of
`{"v": 1}`) and, with `--nested`, payloads holding a list and a nested dict. Each variant runs
in two fresh processes under callgrind, one encoding `--batches` batches and one a quarter of
them (both build all `--batches` first, so building is the same in both); the difference per
packet is the encoding alone, start-up taken out. The count does not move with the machine's
load.

Run: .venv/bin/python bench/bench_batch_encoding.py [--batches 200] [--nested]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from itertools import repeat
from pathlib import Path
from typing import Any

from schnitzel.contract.batch_encoding import encode_batch_bytes
from schnitzel.contract.codec import encode_packet_bytes
from schnitzel.contract.packet import StreamPacket

BATCH = 256
VARIANTS = ("per packet (codec)", "batch")
FLAT: dict[str, Any] = {"v": 1}
NESTED: dict[str, Any] = {"v": 1, "temp": 21.5, "tags": ["a", "b"], "at": {"x": 1, "y": 2.5}}


def batches(n: int, nested: bool) -> list[list[StreamPacket]]:
    template = NESTED if nested else FLAT
    made: list[list[StreamPacket]] = []
    for index in range(n):
        payloads = list(map(dict.copy, repeat(template, BATCH)))
        seqs = range(index * BATCH, (index + 1) * BATCH)
        made.append(StreamPacket.new_many("sensor", "src", seqs, payloads))
    return made


def child(variant: str, encoded: int, built: int, nested: bool) -> None:
    work = batches(built, nested)[:encoded]
    if variant == "batch":
        for batch in work:
            encode_batch_bytes(batch)
    else:
        for batch in work:
            list(map(encode_packet_bytes, batch))


def counted(variant: str, encoded: int, built: int, nested: bool) -> int:
    out = Path(tempfile.mkdtemp(prefix="callgrind_"))
    try:
        cmd = [sys.executable, __file__, "--child", variant, "--encode", str(encoded)]
        cmd += ["--batches", str(built)] + (["--nested"] if nested else [])
        valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out / 'cg.out'}"]
        env = dict(os.environ, PYTHONHASHSEED="0")
        subprocess.run(valgrind + cmd, capture_output=True, text=True, env=env, check=True)
        text = (out / "cg.out").read_text()
        found = re.search(r"^(?:totals|summary): (\d+)", text, re.MULTILINE)
        assert found is not None, "no totals in the callgrind output"
        return int(found.group(1))
    finally:
        shutil.rmtree(out)


def per_packet(variant: str, built: int, nested: bool) -> float:
    short = built // 4
    long_count = counted(variant, built, built, nested)
    short_count = counted(variant, short, built, nested)
    return (long_count - short_count) / ((built - short) * BATCH)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--nested", action="store_true", help="nested payloads")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--encode", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.encode, args.batches, args.nested)
        return
    if shutil.which("valgrind") is None:
        parser.error("this needs valgrind (apt-get install valgrind)")
    shape = "nested payloads" if args.nested else 'payload {"v": 1}'
    print(f"instructions per packet, batches of {BATCH} from new_many, {shape}:")
    figures = {variant: per_packet(variant, args.batches, args.nested) for variant in VARIANTS}
    for variant, figure in figures.items():
        print(f"  {variant:<20} {figure:>9,.0f}")
    print(f"  -> batch / per packet: {figures['batch'] / figures['per packet (codec)']:.2f}x")


if __name__ == "__main__":
    main()
