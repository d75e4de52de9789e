"""What tracking, zones and events cost per frame with 20 objects, against the detector's own
time on the same frames (issue 16; goal: below 5% of it).

The three plugins (`track`, `zones`, `events`, real classes with their real configs, called
as the runtime calls them) take 640x360 frames of the astronaut photograph with 20 synthetic
detections moving across two zones and a line; `events` stores best snapshots (JPEG crop and
frame) in a blob store in a temporary directory. The baseline is `Detector.detect` (NudeNet's
YOLOv8n at 320, letterbox, inference, decode, NMS) on the same frames, one frame a call.
Medians of per-frame times, interleaved in rounds (the machine is shared and noisy).

    .venv/bin/python bench/bench_vision_events.py [--frames 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from schnitzel.contract.packet import StreamPacket
from schnitzel.registry.plugin import NodeContext
from schnitzel_plugins.vision import sessions
from schnitzel_plugins.vision.detector import Detector, DetectorSettings
from schnitzel_plugins.vision.events import Events
from schnitzel_plugins.vision.frame import Detection, Frame, FrameDetections
from schnitzel_plugins.vision.model_path import resolve_model
from schnitzel_plugins.vision.track import Track
from schnitzel_plugins.vision.zones import Zones
from tests.vision.scenes import astronaut

OBJECTS = 20
ZONES = {
    "zones": [
        {"name": "dock", "points": [[0.5, 0], [1, 0], [1, 1], [0.5, 1]], "normalized": True},
        {"name": "yard", "points": [[0, 0.5], [0.5, 0.5], [0.5, 1], [0, 1]], "normalized": True},
        {"name": "gate", "points": [[0.3, 0], [0.3, 1]], "normalized": True},
    ]
}


def context(node_id: str, folder: Path) -> NodeContext:
    return NodeContext(node_id, folder, folder / "state", logging.getLogger(node_id))


def scene(frames: int) -> list[FrameDetections]:
    image = cv2.resize(astronaut(), (640, 360))
    rng = random.Random(16)
    walkers = [
        (rng.uniform(20, 600), rng.uniform(20, 300), rng.uniform(-3, 3), rng.uniform(-2, 2))
        for _ in range(OBJECTS)
    ]
    out = []
    for n in range(frames):
        found = []
        for x, y, vx, vy in walkers:
            cx, cy = (x + vx * n) % 600 + 20, (y + vy * n) % 300 + 20
            found.append(
                Detection(
                    (cx - 10, cy - 20, cx + 10, cy + 20), 0.5 + 0.4 * rng.random(), 0, "person"
                )
            )
        out.append(FrameDetections(Frame(image, "cam", n, n / 25), tuple(found), "synthetic"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    frames = scene(args.frames)
    model = resolve_model("package:nudenet/320n.onnx", Path("."))
    session = sessions.acquire(model, ("CPUExecutionProvider",), None)
    detector = Detector(session, DetectorSettings(), None, model.name)
    pipeline_ms: list[float] = []
    detect_ms: list[float] = []
    events_made = 0
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for _ in range(args.rounds):
            track = Track(Track.Config(), context("trk", folder))
            zones = Zones(Zones.Config(**ZONES), context("zon", folder))
            events = Events(Events.Config(snapshot_dir="snaps"), context("evt", folder))
            asyncio.run(events.open())
            for n, payload in enumerate(frames):
                packet = StreamPacket.new("detection", "cam", n, payload)
                began = time.perf_counter()
                out = events.process(zones.process(track.process(packet)))
                pipeline_ms.append((time.perf_counter() - began) * 1000)
                events_made += len(out)
            for payload in frames[:: max(1, len(frames) // 30)]:  # the detector is slow
                began = time.perf_counter()
                detector.detect([payload.frame.image])
                detect_ms.append((time.perf_counter() - began) * 1000)
    sessions.release(model, ("CPUExecutionProvider",), None)
    ours, theirs = statistics.median(pipeline_ms), statistics.median(detect_ms)
    p99 = sorted(pipeline_ms)[int(len(pipeline_ms) * 0.99)]
    print(f"{OBJECTS} objects, {args.frames} frames x {args.rounds} rounds, {events_made} events")
    print(f"track+zones+events per frame: median {ours:.3f} ms, p99 {p99:.3f} ms")
    print(f"detector per frame (320, one frame a call): median {theirs:.1f} ms")
    mean = statistics.fmean(pipeline_ms)
    print(f"track+zones+events mean (snapshot encoding included): {mean:.3f} ms")
    print(
        f"ratio: median {100 * ours / theirs:.2f}%, mean {100 * mean / theirs:.2f}% of the "
        "detector's median (goal < 5%)"
    )


if __name__ == "__main__":
    main()
