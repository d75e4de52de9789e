"""Instructions per packet of encoding what a durable inbox takes in (valgrind, callgrind).

A durable inbox encodes each batch it admits with `encode_batch_bytes`
(contract/batch_encoding.py). This counts the instructions per packet of that against codec's
`encode_packet_bytes` packet by packet (its baseline, the same bytes), for batches of 256
packets as `synthetic` makes them (`StreamPacket.new_many`, each payload a copy of one
`--payload`: `flat` `{"v": 1}`, `sensor` seven scalar fields, three of them floats, `nested`
a float, a list and a dict, `detection` a frame's metadata and two detections as
`portable_view()` writes them). Each variant runs in two fresh processes under callgrind, one
encoding `--batches` batches and one a quarter of them (both build all `--batches` first, so
building is the same in both); the difference per packet is the encoding alone, start-up
taken out. The count does not move with the machine's load.

`--candidates` adds the C JSON encoders considered for the batch (`_batch_encoding_candidates.py`:
python-rapidjson, orjson checking with ssrjson writing), each where its packages import; they
are not the project's dependencies: install them apart and name the directory with `--lib`.

`--durable ROUNDS` runs item 3 of bench_durable.py instead (quick sizes: `synthetic ->
passthrough -> null`, sync full) with main's encoder and with each candidate patched into the
durable inbox's admission, interleaved round by round, against the in-memory graph: wall
clock, so read it with the machine's load.

Run: .venv/bin/python bench/bench_batch_encoding.py [--batches 200] [--payload sensor]
     [--candidates --lib /tmp/jsonlib]   (pip install --target /tmp/jsonlib orjson ssrjson
     python-rapidjson)
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import _batch_encoding_candidates as candidates

from schnitzel.contract.batch_encoding import encode_batch_bytes
from schnitzel.contract.codec import encode_packet_bytes
from schnitzel.contract.packet import StreamPacket
from schnitzel.runtime import durable_admission

BATCH = 256
VARIANTS = ("per packet (codec)", "batch")
PAYLOADS: dict[str, dict[str, Any]] = {
    "flat": {"v": 1},
    "sensor": {
        "sensor_id": "s-17",
        "temp": 21.5,
        "humidity": 40.25,
        "pressure": 1013.2,
        "battery": 87,
        "ok": True,
        "unit": "C",
    },
    "nested": {"v": 1, "temp": 21.5, "tags": ["a", "b"], "at": {"x": 1, "y": 2.5}},
    "detection": {
        "camera_id": "cam-1",
        "frame_index": 123,
        "pts_s": 4.1,
        "width": 640,
        "height": 480,
        "model": "yolo.onnx",
        "detections": [
            {
                "bbox": [10.5, 20.0, 110.5, 220.0],
                "confidence": 0.8731,
                "class_id": 2,
                "class_name": "car",
            },
            {
                "bbox": [300.0, 40.5, 380.0, 200.5],
                "confidence": 0.5512,
                "class_id": 0,
                "class_name": "person",
            },
        ],
    },
}


def batches(n: int, payload: str) -> list[list[StreamPacket]]:
    template = PAYLOADS[payload]
    made: list[list[StreamPacket]] = []
    for index in range(n):
        payloads = [copy.deepcopy(template) for _ in range(BATCH)]
        seqs = range(index * BATCH, (index + 1) * BATCH)
        made.append(StreamPacket.new_many("sensor", "src", seqs, payloads))
    return made


def child(variant: str, encoded: int, built: int, payload: str) -> None:
    work = batches(built, payload)[:encoded]
    if variant == "per packet (codec)":
        for batch in work:
            list(map(encode_packet_bytes, batch))
        return
    encode = encode_batch_bytes if variant == "batch" else candidates.load(variant)[0]
    for batch in work:
        encode(batch)


def counted(variant: str, encoded: int, built: int, payload: str, lib: str | None) -> int:
    out = Path(tempfile.mkdtemp(prefix="callgrind_"))
    try:
        cmd = [sys.executable, __file__, "--child", variant, "--encode", str(encoded)]
        cmd += ["--batches", str(built), "--payload", payload] + (["--lib", lib] if lib else [])
        valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out / 'cg.out'}"]
        env = dict(os.environ, PYTHONHASHSEED="0")
        subprocess.run(valgrind + cmd, capture_output=True, text=True, env=env, check=True)
        text = (out / "cg.out").read_text()
        found = re.search(r"^(?:totals|summary): (\d+)", text, re.MULTILINE)
        assert found is not None, "no totals in the callgrind output"
        return int(found.group(1))
    finally:
        shutil.rmtree(out)


def per_packet(variant: str, built: int, payload: str, lib: str | None) -> float:
    short = built // 4
    long_count = counted(variant, built, built, payload, lib)
    short_count = counted(variant, short, built, payload, lib)
    return (long_count - short_count) / ((built - short) * BATCH)


def installed(name: str) -> bool:
    try:
        candidates.load(name)
    except ImportError as exc:
        print(f"  ({name} left out: {exc})")
        return False
    return True


def _use(encode: candidates.Encoder) -> None:
    """The durable inbox's admission encodes with `encode` from now on."""
    vars(durable_admission)["encode_batch_bytes"] = encode


def durable(rounds: int, names: list[str]) -> None:
    """Packets/s of item 3 of bench_durable.py per encoder, interleaved, and the in-memory
    graph's beside them."""
    import bench_durable as item  # its graphs and runs; only this mode needs them

    sys.modules.setdefault(item.MODULE, item)  # its graphs name its plugins by module
    encoders: dict[str, candidates.Encoder] = {"main": durable_admission.encode_batch_bytes}
    encoders |= {name: candidates.load(name)[0] for name in names}
    rates: dict[str, list[float]] = {name: [] for name in ("in-memory", *encoders)}
    n = item.QUICK.cost_packets
    with tempfile.TemporaryDirectory(dir=item.REPO.parent, prefix="bench_batch_encoding_") as root:
        ws = item.Workspace(Path(root))
        try:
            for index in range(rounds):
                rates["in-memory"].append(n / item.run_graph(ws, item.graph_text(n, stages=1), n))
                order = list(encoders)
                for name in order[index % len(order) :] + order[: index % len(order)]:
                    _use(encoders[name])
                    rates[name].append(n / item.durable_run(ws, n, stages=1, sync="full"))
        finally:
            _use(encoders["main"])
    memory = max(rates["in-memory"])
    print(f"item 3, {n:,} packets, {rounds} rounds (load: {os.getloadavg()[0]:.1f}):")
    for name, each in rates.items():
        print(
            f"  {name:<16} best {max(each):>9,.0f}  median {statistics.median(each):>9,.0f}"
            f" packets/s  ({max(each) / memory:.3f}x in-memory)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--payload", choices=sorted(PAYLOADS), default="flat")
    parser.add_argument("--nested", action="store_true", help="the same as --payload nested")
    parser.add_argument("--candidates", action="store_true", help="the C encoders considered")
    parser.add_argument("--lib", help="a directory holding the candidates' packages")
    parser.add_argument("--durable", type=int, metavar="ROUNDS", help="item 3 A/B instead")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--encode", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.lib:
        sys.path.insert(0, args.lib)
    payload = "nested" if args.nested else args.payload
    if args.child:
        child(args.child, args.encode, args.batches, payload)
        return
    if args.durable:
        durable(args.durable, [name for name in candidates.CANDIDATES if installed(name)])
        return
    if shutil.which("valgrind") is None:
        parser.error("this needs valgrind (apt-get install valgrind)")
    print(f"instructions per packet, batches of {BATCH} from new_many, payload {payload}:")
    variants = list(VARIANTS)
    if args.candidates:
        variants += [name for name in candidates.CANDIDATES if installed(name)]
    figures = {
        variant: per_packet(variant, args.batches, payload, args.lib) for variant in variants
    }
    codec, batch = figures["per packet (codec)"], figures["batch"]
    for variant, figure in figures.items():
        against = (
            f"  {figure / codec:.2f}x codec, {figure / batch:.2f}x batch" if figure != codec else ""
        )
        print(f"  {variant:<20} {figure:>9,.0f}{against}", flush=True)


if __name__ == "__main__":
    main()
