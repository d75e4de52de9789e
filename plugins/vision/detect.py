"""`detect`: objects in frames, with a YOLO-family ONNX model on onnxruntime."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    field_validator,
)

from schnitzel import (
    CheckContext,
    Compute,
    EnvironmentProblem,
    NodeContext,
    PayloadProfile,
    PluginConfig,
    StreamPacket,
)
from schnitzel_plugins.vision.frame import Detection, Frame, FrameDetections
from schnitzel_plugins.vision.model_path import ModelPathError, resolve_model

__all__ = ["Detect", "DetectConfig", "MotionConfig"]


class MotionConfig(BaseModel):
    """Motion gating: skip the detector on frames where nothing moved (docs/vision.md)."""

    model_config = ConfigDict(extra="forbid")

    width: StrictInt = Field(default=160, ge=16, le=1920, description="Compared at this width.")
    pixel_delta: StrictInt = Field(
        default=25, ge=1, le=255, description="Grey levels a pixel must change by."
    )
    min_changed: StrictFloat | StrictInt = Field(
        default=0.002, ge=0, le=1, description="Fraction of pixels that must change."
    )
    max_skip: StrictInt = Field(
        default=50, ge=1, description="Most frames in a row skipped before one is detected."
    )


class DetectConfig(PluginConfig):
    """Options of the detect node."""

    model: str = Field(
        min_length=1,
        description="ONNX model file, relative to the graph file; or package:NAME/FILE for a "
        "file inside an installed Python package.",
    )
    confidence: StrictFloat | StrictInt = Field(
        default=0.25, ge=0, le=1, description="Lowest score kept."
    )
    iou: StrictFloat | StrictInt = Field(
        default=0.45, ge=0, le=1, description="Overlap above which NMS drops the weaker box."
    )
    max_det: StrictInt = Field(default=100, ge=1, description="Most detections per frame.")
    classes: list[StrictInt | str] | None = Field(
        default=None, description="Keep only these classes (names or ids); null keeps all."
    )
    min_area: StrictFloat | StrictInt = Field(
        default=0, ge=0, description="Smallest box kept, in square pixels of the frame."
    )
    labels: str | None = Field(
        default=None,
        description="Class names file (one per line, or JSON); null: from the model's metadata.",
    )
    layout: Literal["auto", "yolov8", "yolov5", "yolox"] = Field(
        default="auto", description="Output decoder; auto: from the model's shapes and metadata."
    )
    input_size: StrictInt | None = Field(
        default=None, ge=32, le=4096, description="Input side for models with a dynamic size."
    )
    padding: Literal["center", "corner"] = Field(
        default="center", description="Letterbox placement the export was trained with."
    )
    pad_value: StrictInt = Field(default=114, ge=0, le=255, description="Letterbox fill.")
    color: Literal["rgb", "bgr"] = Field(
        default="rgb", description="Channel order the model takes."
    )
    normalize: StrictBool = Field(default=True, description="Scale pixels to 0..1 (else 0..255).")
    providers: list[str] = Field(
        default=["CPUExecutionProvider"],
        min_length=1,
        description="onnxruntime execution providers in order of preference, e.g. "
        "[CUDAExecutionProvider, CPUExecutionProvider].",
    )
    intra_op_threads: StrictInt | None = Field(
        default=None,
        ge=1,
        le=256,
        description="onnxruntime threads per inference; null: its default.",
    )
    batch_max: StrictInt = Field(
        default=8, ge=1, le=256, description="Frames per inference for dynamic-batch models."
    )
    motion: MotionConfig | None = Field(
        default=None,
        description="Skip detection on still frames (they get the camera's last detections); "
        "null: detect every frame.",
    )

    @field_validator("providers")
    @classmethod
    def _provider_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name.endswith("ExecutionProvider"):
                raise ValueError(
                    f"{name!r} is not an onnxruntime provider name; they end in "
                    "ExecutionProvider (CPUExecutionProvider, CUDAExecutionProvider, ...)"
                )
        return value


class Detect(Compute):
    """Objects in frames (YOLOv8/YOLO11, YOLOv5, YOLOX ONNX exports); pixels stay attached."""

    name: ClassVar[str] = "detect"
    Config: ClassVar[type[PluginConfig]] = DetectConfig
    accepts = frozenset({"frame", "detection"})
    emits = frozenset({"detection"})
    emits_profile = PayloadProfile.JSON_PORTABLE  # FrameDetections.portable_view()

    def __init__(self, config: Any, context: NodeContext) -> None:
        super().__init__(config, context)
        self.detector: Any = None
        self._model_path: Path | None = None
        self.inference_ms: list[float] = []
        """The last 1024 inference times (ms per frame): p50/p99 for health."""
        self.frames = 0
        self.busy_s = 0.0
        """Seconds spent detecting (all calls added up)."""
        self.opened_at = 0.0
        self.gates: dict[str, Any] = {}
        """Per camera, its motion gate (with `motion`)."""
        self._last: dict[str, tuple[Detection, ...]] = {}
        self._gate_lock = threading.Lock()

    @classmethod
    def check_environment(cls, config: Any, context: CheckContext) -> list[EnvironmentProblem]:
        problems = []
        try:
            path = resolve_model(config.model, context.graph_dir)
        except ModelPathError as exc:
            return [EnvironmentProblem(str(exc), "see docs/vision.md, Models", "model")]
        if not path.is_file():
            problems.append(
                EnvironmentProblem(
                    f"model file {path} does not exist",
                    "export or copy an ONNX detector there (docs/vision.md, Models); relative "
                    "paths start at the graph file's directory",
                    config_key="model",
                )
            )
        if config.labels is not None and not context.resolve(config.labels).is_file():
            problems.append(
                EnvironmentProblem(
                    f"labels file {context.resolve(config.labels)} does not exist",
                    "give a file with one class name per line, or drop `labels` to use the "
                    "model's own names",
                    config_key="labels",
                )
            )
        return problems

    async def open(self) -> None:
        await asyncio.to_thread(self._load)
        self.opened_at = time.monotonic()

    def stats(self) -> dict[str, Any]:
        """Inference ms per frame (p50/p99 of the last 1024), frames, and how busy the node's
        threads were since it opened (1.0: every thread inferring all the time)."""
        times = sorted(self.inference_ms)
        elapsed = time.monotonic() - self.opened_at if self.opened_at else 0.0
        threads = self.context.max_concurrency or 1
        return {
            "frames": self.frames,
            "inference_ms": {
                "p50": round(times[len(times) // 2], 2) if times else None,
                "p99": round(times[min(len(times) - 1, int(len(times) * 0.99))], 2)
                if times
                else None,
            },
            "busy": round(min(1.0, self.busy_s / (elapsed * threads)), 3) if elapsed else 0.0,
            **(
                {"motion_skipped": sum(g.skipped for g in self.gates.values())}
                if self.config.motion is not None
                else {}
            ),
        }

    def _load(self) -> None:
        import onnxruntime as ort

        from schnitzel_plugins.vision import sessions
        from schnitzel_plugins.vision.detector import Detector, DetectorSettings
        from schnitzel_plugins.vision.labels import labels_from_file

        c = self.config
        available = ort.get_available_providers()
        missing = [p for p in c.providers if p not in available]
        if missing:
            raise RuntimeError(
                f"onnxruntime here has no {', '.join(missing)} (it has {', '.join(available)}); "
                "install the onnxruntime build for that device or list only those providers"
            )
        path = resolve_model(c.model, self.context.graph_dir)
        labels = labels_from_file(self.context.resolve(c.labels)) if c.labels else None
        providers = tuple(c.providers)
        session = sessions.acquire(path, providers, c.intra_op_threads)
        self._model_path = path
        settings = DetectorSettings(
            confidence=float(c.confidence),
            iou=float(c.iou),
            max_det=c.max_det,
            classes=tuple(c.classes) if c.classes is not None else None,
            min_area=float(c.min_area),
            layout=None if c.layout == "auto" else c.layout,
            input_size=c.input_size,
            padding=c.padding,
            pad_value=c.pad_value,
            color=c.color,
            normalize=c.normalize,
        )
        try:
            self.detector = Detector(session, settings, labels, path.name)
        except Exception:
            sessions.release(path, providers, c.intra_op_threads)
            raise
        # A call takes one inference's worth: progress shows per inference, and frames that
        # wait stay in the inbox, where its byte bound and overflow apply.
        self.max_batch = c.batch_max if self.detector.dynamic_batch else 1

    async def close(self) -> None:
        from schnitzel_plugins.vision import sessions

        if self._model_path is not None:
            c = self.config
            sessions.release(self._model_path, tuple(c.providers), c.intra_op_threads)
            self._model_path = None

    def process(self, packet: StreamPacket) -> StreamPacket:
        return self.process_batch([packet])[0]

    def process_batch(self, packets: list[StreamPacket]) -> list[StreamPacket]:
        frames = [_frame_of(p) for p in packets]
        gated = self.config.motion is not None
        found = self._detect_moving(frames) if gated else self._detect(frames)
        model = self.detector.model_name
        return [
            packet.evolve(kind="detection", payload=FrameDetections(frame, detections, model))
            for packet, frame, detections in zip(packets, frames, found, strict=True)
        ]

    def _detect(self, frames: list[Frame]) -> list[tuple[Detection, ...]]:
        detector = self.detector
        out: list[tuple[Detection, ...]] = []
        step = self.config.batch_max if detector.dynamic_batch else 1
        for start in range(0, len(frames), step):
            chunk = frames[start : start + step]
            began = time.perf_counter()
            found = detector.detect([f.image for f in chunk])
            spent = time.perf_counter() - began
            self._record(spent * 1000 / len(chunk), spent, len(chunk))
            out.extend(tuple(d) for d in found)
        return out

    def _detect_moving(self, frames: list[Frame]) -> list[tuple[Detection, ...]]:
        """Detect only frames that moved; a still frame gets its camera's last detections
        (what stood there still does: tracks keep going)."""
        from schnitzel_plugins.vision.motion import MotionGate, MotionSettings

        m = self.config.motion
        with self._gate_lock:  # several threads with concurrency > 1: decide in order
            moving = []
            for n, frame in enumerate(frames):
                gate = self.gates.get(frame.camera_id)
                if gate is None:
                    settings = MotionSettings(
                        m.width, m.pixel_delta, float(m.min_changed), m.max_skip
                    )
                    gate = self.gates[frame.camera_id] = MotionGate(settings)
                if gate.moves(frame.image):
                    moving.append(n)
        detected = dict(zip(moving, self._detect([frames[n] for n in moving]), strict=True))
        out = []
        with self._gate_lock:
            for n, frame in enumerate(frames):
                if n in detected:
                    self._last[frame.camera_id] = detected[n]
                out.append(detected.get(n, self._last.get(frame.camera_id, ())))
        return out

    def _record(self, ms: float, spent_s: float, frames: int) -> None:
        # from several threads at once: each += is one bytecode-level race at worst, a
        # figure for the operator, not an invariant
        self.busy_s += spent_s
        self.frames += frames
        times = self.inference_ms
        times.append(ms)
        if len(times) > 1024:
            del times[:512]


def _frame_of(packet: StreamPacket) -> Frame:
    payload = packet.payload
    if isinstance(payload, Frame):
        return payload
    if isinstance(payload, FrameDetections):
        return payload.frame
    raise TypeError(
        f"detect takes frame packets (a Frame payload from video_file, rtsp or camera); "
        f"{packet.kind} packet {packet.packet_id} carries {type(payload).__name__}"
    )
