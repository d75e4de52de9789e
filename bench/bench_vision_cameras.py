"""Four cameras of 720p at 25 fps into one detector that cannot keep up: latency stays bounded,
what the detector cannot take is counted, memory stays flat.

Four `video_file` sources (`realtime: true`, `loop: true`: a camera's pace, without end) of a
generated 1280x720 mp4v scene feed one `detect` (NudeNet's YOLOv8n at 320, concurrency 1)
whose inbox holds one frame with `overflow: drop_oldest` (bounded in bytes too), and which
infers one frame at a time (`batch_max: 1`), so it always works on the newest frame: a frame
waits at most one inference, then takes one. A latency sink records each detection's age
(now - the frame packet's `ts`, set when the source emitted it). Every second the
process's RSS is sampled.

Figures, against their baselines in the same run:

- latency p50/p99 against the detector's own inference time (p50 from its `plugin_stats`)
  plus one frame interval (40 ms): goal p99 < 2 x inference + 40 ms (no growing lag);
- frames offered (4 x 25/s) against frames detected; the rest are counted as dropped;
- peak RSS (goal < 500 MB) and RSS over the first and the last fifth of the run (flat).

    .venv/bin/python bench/bench_vision_cameras.py [--duration 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _latency_sink import RECORDED

from schnitzel.runtime import Runtime
from schnitzel.validate import load_graph
from tests.vision.scenes import write_scene

FRAME_BYTES = 1280 * 720 * 3


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        video = write_scene(folder / "cam.mp4", 50, (1280, 720), photo_side=480).path
        cams = "".join(
            f"  - {{id: cam{n}, kind: source, plugin: video_file, config: {{path: '{video}', "
            "realtime: true, loop: true}}\n"
            for n in range(4)
        )
        edges = "".join(f"  - {{from: cam{n}, to: det}}\n" for n in range(4))
        graph = folder / "cams.yaml"
        graph.write_text(
            "version: 2\nruntime: {allow_modules: [_latency_sink]}\nnodes:\n"
            + cams
            + "  - id: det\n    kind: compute\n    plugin: detect\n"
            "    config: {model: 'package:nudenet/320n.onnx', batch_max: 1}\n"
            f"    inbox: {{max: 1, max_bytes: {FRAME_BYTES}, overflow: drop_oldest}}\n"
            "  - {id: out, kind: sink, plugin: '_latency_sink:LatencyRecorder'}\n"
            "edges:\n" + edges + "  - {from: det, to: out}\n"
        )
        samples: list[float] = []
        done = threading.Event()

        def sample() -> None:
            while not done.wait(1.0):
                samples.append(rss_mb())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        runtime = Runtime(load_graph(graph), state_dir=folder / "state")
        report = asyncio.run(runtime.run(duration_s=args.duration))
        done.set()
        sampler.join()
    det = report["nodes"]["det"]
    latencies = sorted(RECORDED["out"])
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    inference = det["plugin_stats"]["inference_ms"]["p50"]
    inference_p99 = det["plugin_stats"]["inference_ms"]["p99"]
    goal = 2 * inference + 40
    offered = sum(report["nodes"][f"cam{n}"]["out"] for n in range(4))
    fifth = max(1, len(samples) // 5)
    print(f"duration {report['duration_s']:.0f} s, 4 cameras 1280x720 at 25 fps -> detect (320)")
    print(
        f"frames offered {offered} ({offered / report['duration_s']:.1f}/s), detected "
        f"{det['out']} ({det['out'] / report['duration_s']:.1f}/s), dropped {det['dropped']} "
        f"(drop_oldest), in flight at the end {offered - det['out'] - det['dropped']}"
    )
    print(
        f"latency p50 {p50:.0f} ms, p99 {p99:.0f} ms; inference p50 {inference:.0f} ms: "
        f"goal p99 < 2 x inference + 40 ms = {goal:.0f} ms: {'met' if p99 < goal else 'MISSED'}"
        f"; inference p99 {inference_p99:.0f} ms"
    )
    print(
        f"detector busy {det['plugin_stats']['busy']:.2f}, inbox depth max "
        f"{det['queue_depth_max']} (bound: 1 frame)"
    )
    print(
        f"RSS peak {max(samples):.0f} MB (goal < 500); median of the first fifth "
        f"{statistics.median(samples[:fifth]):.0f} MB, of the last fifth "
        f"{statistics.median(samples[-fifth:]):.0f} MB"
    )


if __name__ == "__main__":
    main()
