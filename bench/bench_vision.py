"""The vision pack's cost: `video_file -> detect -> null` against a bare Python loop doing the
same work, and what decoding a frame costs.

Read each figure against its baseline in the same run (the machine is shared and noisy):

1. Frames/s of the graph `video_file -> detect -> null` (run in-process by `Runtime`) against
   a bare loop on the same file and model: `cv2.VideoCapture.read`, the same letterbox,
   `InferenceSession.run`, the same decode and NMS (`Detector.prepare/run/finish`), one frame
   after the other on one thread. Goal: graph / bare >= 1.0 with the same work (one frame per
   inference). The graph decodes on its own thread while the detector infers (pipelining on
   two cores); with `concurrency: 2` two inferences run at once too; with `batch_max: 8` a
   dynamic-batch model infers several frames in one run. Best of `--rounds` interleaved
   rounds.
2. Decode cost per frame at 720p and 1080p (OpenCV's FFmpeg backend, mp4v), median of the
   per-frame times of `VideoCapture.read`.
3. Sizing: the median time of one inference (`Detector.run`, one frame) with the model's input
   at 320 and at 640 (the model's input size is dynamic), and the frames/s one CPU core-set
   gets from it; decode, letterbox and NMS come on top (item 1 has them all).

The scene is the astronaut of scikit-image moving over a gradient (tests/vision/scenes.py);
the model is NudeNet's YOLOv8n at 320 from the nudenet wheel (the vision-test extra).

    .venv/bin/python bench/bench_vision.py [--frames 60] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from schnitzel.runtime import Runtime
from schnitzel.validate import load_graph
from schnitzel_plugins.vision import sessions
from schnitzel_plugins.vision.detector import Detector, DetectorSettings
from schnitzel_plugins.vision.model_path import resolve_model
from tests.vision.scenes import astronaut, write_scene

MODEL = "package:nudenet/320n.onnx"


def bare_loop(video: Path, model: Path) -> tuple[float, int]:
    """Frames/s of read -> prepare -> run -> finish, one frame at a time; frames with a box."""
    session = sessions.acquire(model, ("CPUExecutionProvider",), None)
    try:
        detector = Detector(session, DetectorSettings(), None, model.name)
        capture = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
        frames = found = 0
        began = time.perf_counter()
        while True:
            ok, image = capture.read()
            if not ok:
                break
            blob, placed = detector.prepare(image)
            output = detector.run([blob])[0]
            found += bool(detector.finish(output, placed))
            frames += 1
        elapsed = time.perf_counter() - began
        capture.release()
    finally:
        sessions.release(model, ("CPUExecutionProvider",), None)
    return frames / elapsed, found


def graph_run(folder: Path, video: Path, concurrency: int, batch: int) -> tuple[float, int]:
    """Frames/s of the graph, from its own report (delivered / duration)."""
    graph = folder / f"bench_c{concurrency}_b{batch}.yaml"
    graph.write_text(
        "version: 2\nnodes:\n"
        f"  - {{id: cam, kind: source, plugin: video_file, config: {{path: '{video}'}}}}\n"
        f"  - {{id: det, kind: compute, plugin: detect, concurrency: {concurrency}, "
        f"config: {{model: '{MODEL}', batch_max: {batch}}}}}\n"
        "  - {id: out, kind: sink, plugin: 'null'}\n"
        "edges: [{from: cam, to: det}, {from: det, to: out}]\n"
    )
    report = asyncio.run(Runtime(load_graph(graph), state_dir=folder / "state").run())
    delivered = report["totals"]["delivered"]
    return delivered / report["duration_s"], delivered


def decode_ms(folder: Path, size: tuple[int, int], frames: int) -> float:
    """Median ms per `VideoCapture.read` of a `size` mp4v video."""
    video = write_scene(folder / f"decode_{size[1]}p.mp4", frames, size, photo_side=size[1] // 2)
    capture = cv2.VideoCapture(str(video.path), cv2.CAP_FFMPEG)
    times = []
    while True:
        began = time.perf_counter()
        ok, _ = capture.read()
        if not ok:
            break
        times.append((time.perf_counter() - began) * 1000)
    capture.release()
    return statistics.median(times)


def inference_ms(model: Path, side: int, runs: int = 20) -> float:
    """Median ms of one inference with the input at `side` x `side`."""
    session = sessions.acquire(model, ("CPUExecutionProvider",), None)
    try:
        detector = Detector(session, DetectorSettings(input_size=side), None, model.name)
        blob, _ = detector.prepare(astronaut())
        detector.run([blob])  # warm up
        times = []
        for _ in range(runs):
            began = time.perf_counter()
            detector.run([blob])
            times.append((time.perf_counter() - began) * 1000)
    finally:
        sessions.release(model, ("CPUExecutionProvider",), None)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    model = resolve_model(MODEL, Path("."))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        video = write_scene(folder / "scene.mp4", args.frames).path
        variants = {
            "concurrency 1, one frame per inference (the bare loop's work)": (1, 1),
            "concurrency 2, one frame per inference": (2, 1),
            "concurrency 1, batch_max 8 (dynamic batch)": (1, 8),
        }
        best = dict.fromkeys(["bare", *variants], 0.0)
        for _ in range(args.rounds):
            best["bare"] = max(best["bare"], bare_loop(video, model)[0])
            for label, (concurrency, batch) in variants.items():
                best[label] = max(best[label], graph_run(folder, video, concurrency, batch)[0])
        print(
            f"frames: {args.frames} of 640x360 mp4v, model nudenet 320n.onnx, best of "
            f"{args.rounds} interleaved rounds"
        )
        print(f"bare loop (read, letterbox, run, decode, NMS) {best['bare']:7.1f} frames/s")
        for label in variants:
            print(
                f"graph video_file -> detect -> null, {label}: {best[label]:7.1f} frames/s  "
                f"ratio {best[label] / best['bare']:.2f}"
            )
        for size in ((1280, 720), (1920, 1080)):
            print(
                f"decode {size[1]}p (OpenCV FFmpeg, mp4v): {decode_ms(folder, size, 60):.2f} "
                "ms/frame (median)"
            )
        for side in (320, 640):
            ms = inference_ms(model, side)
            print(f"inference at {side}x{side}: {ms:.1f} ms (median), {1000 / ms:.1f} frames/s")


if __name__ == "__main__":
    main()
