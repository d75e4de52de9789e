"""Motion gating on a mostly still scene: detector calls saved and frames/s gained, against the
same graph without it (issue 16).

`video_file -> detect -> track -> null`, run in-process by `Runtime` on a 640x360 mp4v video
of the astronaut photograph standing still for 80% of its frames and walking for 20%; the
detector is NudeNet's YOLOv8n at 320, `batch_max: 1`. Each round runs the graph without and
with `motion: {}`; best of `--rounds` interleaved rounds (the machine is shared and noisy).

    .venv/bin/python bench/bench_vision_motion.py [--frames 250] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from schnitzel.runtime import Runtime
from schnitzel.validate import load_graph
from tests.vision.scenes import write_still_scene

GRAPH = """version: 2
nodes:
  - {{id: cam, kind: source, plugin: video_file, config: {{path: '{video}'}}}}
  - id: det
    kind: compute
    plugin: detect
    config: {{model: 'package:nudenet/320n.onnx', batch_max: 1{motion}}}
  - {{id: trk, kind: policy, plugin: track}}
  - {{id: out, kind: sink, plugin: 'null'}}
edges: [{{from: cam, to: det}}, {{from: det, to: trk}}, {{from: trk, to: out}}]
"""


def lefts(frames: int) -> list[int]:
    still = frames * 2 // 5
    walk = frames - 2 * still
    return [20] * still + [20 + 300 * n // walk for n in range(walk)] + [320] * still


def run(folder: Path, video: Path, motion: bool) -> tuple[float, int, int]:
    graph = folder / f"graph-{motion}.yaml"
    graph.write_text(GRAPH.format(video=video, motion=", motion: {}" if motion else ""))
    began = time.perf_counter()
    report = asyncio.run(Runtime(load_graph(graph), state_dir=folder / "state").run())
    spent = time.perf_counter() - began
    stats = report["nodes"]["det"]["plugin_stats"]
    return spent, stats["frames"], stats.get("motion_skipped", 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=250)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        video = write_still_scene(folder / "still.mp4", lefts(args.frames)).path
        best: dict[bool, tuple[float, int, int]] = {}
        for _ in range(args.rounds):
            for motion in (False, True):
                result = run(folder, video, motion)
                if motion not in best or result[0] < best[motion][0]:
                    best[motion] = result
    for motion, (spent, calls, skipped) in best.items():
        label = "with motion gating" if motion else "without"
        print(
            f"{label:20} {args.frames / spent:6.1f} frames/s  detector calls {calls}  "
            f"skipped {skipped}  ({spent:.1f} s)"
        )
    gain = best[False][0] / best[True][0]
    saved = 1 - best[True][1] / best[False][1]
    print(f"detector calls saved: {100 * saved:.0f}%  frames/s gained: x{gain:.2f}")


if __name__ == "__main__":
    main()
