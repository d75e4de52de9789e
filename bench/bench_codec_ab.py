"""What a change to the packet encoding costs: encode and decode of this checkout's codec against
an older checkout's, in one process, interleaved.

    python bench/bench_codec_ab.py BASE_CHECKOUT [--rounds 15] [--packets 5000]

The older `schnitzel/contract/codec.py` is loaded from BASE_CHECKOUT as a module of its own
(over this checkout's packet type), so both run on the same packets in the same process, round
after round; CPU time (`time.process_time`), best round of each, so a busy machine slows both
alike. Three payloads: a tiny sensor reading, three floats, a list of five detections.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from schnitzel.contract import codec as this
from schnitzel.contract.packet import StreamPacket

PAYLOADS: dict[str, Any] = {
    "sensor {v: 1}": {"v": 1},
    "imu, 3 floats": {"x": 1.5, "y": -0.25, "z": 9.81},
    "5 detections": {
        "boxes": [{"x": 1, "y": 2, "w": 3.5, "h": 4.25, "label": "person", "score": 0.91}] * 5
    },
}


def load_base(checkout: Path) -> ModuleType:
    path = checkout / "schnitzel" / "contract" / "codec.py"
    spec = importlib.util.spec_from_file_location("base_codec", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measure(base: ModuleType, payload: Any, rounds: int, n: int) -> dict[str, float]:
    """Microseconds per packet of each codec, encode and decode, best of `rounds`."""
    packets = [
        StreamPacket.new("sensor", "src", i, payload, {"idempotency_key": f"k{i}"})
        for i in range(n)
    ]
    bodies = [base.encode_packet(p).encode() for p in packets]
    runs: dict[str, Callable[[], object]] = {
        "encode base": lambda: [base.encode_packet(p).encode() for p in packets],
        "encode this": lambda: [this.encode_packet_bytes(p) for p in packets],
        "decode base": lambda: [base.decode_packet(b) for b in bodies],
        "decode this": lambda: [this.decode_packet(b) for b in bodies],
    }
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(rounds):
        for key, run in runs.items():
            start = time.process_time()
            run()
            best[key] = min(best[key], time.process_time() - start)
    return {key: 1e6 * seconds / n for key, seconds in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", type=Path, help="an older checkout of this repository")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--packets", type=int, default=5000)
    args = parser.parse_args()
    base = load_base(args.base.resolve())
    for name, payload in PAYLOADS.items():
        us = measure(base, payload, args.rounds, args.packets)
        print(
            f"{name:14} encode {us['encode base']:.2f} -> {us['encode this']:.2f} us "
            f"({us['encode this'] / us['encode base']:.2f}x the time); decode "
            f"{us['decode base']:.2f} -> {us['decode this']:.2f} us "
            f"({us['decode this'] / us['decode base']:.2f}x)"
        )


if __name__ == "__main__":
    main()
