"""StreamPacket creation and JSON encoding against straightforward designs, in one run.

Baselines: a frozen slotted dataclass with uuid4 ids and a timezone-aware datetime (what one
writes first), and a plain dict (the cheapest record, but mutable and unchecked).
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
    naive_packets = [
        NaivePacket(str(uuid.uuid4()), datetime.now(UTC), "sensor", "imu", n, PAYLOAD)
        for n in range(N // 4)
    ]
    encode = best_of(lambda: [encode_packet(p) for p in packets])
    naive_encode = best_of(lambda: [json.dumps(asdict(p), default=str) for p in naive_packets])
    lines = [encode_packet(p) for p in packets]
    decode = best_of(lambda: [decode_packet(line) for line in lines])
    m = len(packets)
    print(f"portable JSON ({m:,} packets, best of 5)")
    print(
        f"  encode_packet               {encode / m * 1e9:8.0f} ns/packet  "
        f"(json.dumps(asdict()) baseline: {naive_encode / m * 1e9:.0f} ns, "
        f"{naive_encode / encode:.2f}x)"
    )
    print(f"  decode_packet (validating)  {decode / m * 1e9:8.0f} ns/packet")


if __name__ == "__main__":
    main()
