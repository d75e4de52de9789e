"""StreamPacket creation, derivation and JSON encoding against straightforward designs, in
one run.

Baselines: a frozen slotted dataclass with uuid4 ids and a timezone-aware datetime (what one
writes first), and a plain dict (the cheapest record, but mutable and unchecked). Deriving a
packet (`evolve(payload=...)`) is read against `NamedTuple._replace` (what `evolve` was before
plugin API 1.1) and against the work a map stage does: copying the payload dict with one
computed value (goal: deriving costs about what that work costs).
Run: .venv/bin/python bench/bench_packet.py
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _timing import best_of

from schnitzel.contract import StreamPacket, decode_packet, encode_packet

N = 200_000
PAYLOAD = {"x": 1.5, "y": -0.25, "z": 9.81}


@dataclass(frozen=True, slots=True)
class NaivePacket:
    packet_id: str
    ts: datetime
    kind: str
    source_id: str
    seq: int
    payload: Any
    meta: dict[str, Any] = field(default_factory=dict)


def create_schnitzel() -> None:
    new = StreamPacket.new
    for n in range(N):
        new("sensor", "imu", n, PAYLOAD)


def create_naive() -> None:
    for n in range(N):
        NaivePacket(str(uuid.uuid4()), datetime.now(UTC), "sensor", "imu", n, PAYLOAD)


def create_dict() -> None:
    for n in range(N):
        {
            "packet_id": n,
            "ts": time.time(),
            "kind": "sensor",
            "source_id": "imu",
            "seq": n,
            "payload": PAYLOAD,
        }


def derive_evolve(packets: list[StreamPacket]) -> None:
    for p in packets:
        p.evolve(payload=PAYLOAD)


def derive_with_payload(packets: list[StreamPacket]) -> None:
    for p in packets:
        p.with_payload(PAYLOAD)


def derive_replace(packets: list[StreamPacket]) -> None:
    for p in packets:
        p._replace(payload=PAYLOAD)


def the_work(packets: list[StreamPacket]) -> None:
    for p in packets:
        {**PAYLOAD, "value": PAYLOAD["x"] * 0.5 + p.seq}


def main() -> None:
    ours = best_of(create_schnitzel)
    naive = best_of(create_naive)
    plain = best_of(create_dict)
    print(f"packet creation ({N:,} packets, best of 5)")
    print(f"  StreamPacket.new            {ours / N * 1e9:8.0f} ns/packet")
    print(
        f"  frozen dataclass+uuid4+dt   {naive / N * 1e9:8.0f} ns/packet  "
        f"(StreamPacket is {naive / ours:.2f}x faster)"
    )
    print(
        f"  plain dict (mutable)        {plain / N * 1e9:8.0f} ns/packet  "
        f"(StreamPacket costs {ours / plain:.2f}x a dict)"
    )

    packets = [StreamPacket.new("sensor", "imu", n, PAYLOAD) for n in range(N // 4)]
    m = len(packets)
    # short runs, interleaved, many of them: on a busy machine the fastest of many short
    # windows is the least disturbed, and each variant gets the same windows
    short = packets[:5_000]
    derivers = {
        "evolve": derive_evolve,
        "with_payload": derive_with_payload,
        "replace": derive_replace,
        "work": the_work,
    }
    derive: dict[str, list[float]] = {name: [] for name in derivers}
    for _ in range(40):
        for name, fn in derivers.items():
            derive[name].append(best_of(lambda fn=fn: fn(short), repeat=1))
    evolve, with_payload, replace, work = (min(derive[name]) * m / len(short) for name in derive)
    print(f"deriving a packet ({len(short):,} packets, best of 40 interleaved runs)")
    print(
        f"  evolve(payload=...)         {evolve / m * 1e9:8.0f} ns/packet  "
        f"(_replace: {replace / m * 1e9:.0f} ns, {replace / evolve:.2f}x slower)"
    )
    print(f"  with_payload(...)           {with_payload / m * 1e9:8.0f} ns/packet")
    print(
        f"  the work: payload dict copy {work / m * 1e9:8.0f} ns/packet  "
        f"(evolve costs {evolve / work:.2f}x the work, with_payload "
        f"{with_payload / work:.2f}x, _replace {replace / work:.2f}x)"
    )
    naive_packets = [
        NaivePacket(str(uuid.uuid4()), datetime.now(UTC), "sensor", "imu", n, PAYLOAD)
        for n in range(N // 4)
    ]
    encode = best_of(lambda: [encode_packet(p) for p in packets])
    naive_encode = best_of(lambda: [json.dumps(asdict(p), default=str) for p in naive_packets])
    lines = [encode_packet(p) for p in packets]
    decode = best_of(lambda: [decode_packet(line) for line in lines])
    print(f"portable JSON ({m:,} packets, best of 5)")
    print(
        f"  encode_packet               {encode / m * 1e9:8.0f} ns/packet  "
        f"(json.dumps(asdict()) baseline: {naive_encode / m * 1e9:.0f} ns, "
        f"{naive_encode / encode:.2f}x)"
    )
    print(f"  decode_packet (validating)  {decode / m * 1e9:8.0f} ns/packet")


if __name__ == "__main__":
    main()
