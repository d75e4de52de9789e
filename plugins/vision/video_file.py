"""`video_file`: frames from a video file, decoded on a thread of its own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from pydantic import Field, StrictBool, StrictFloat, StrictInt

from schnitzel import (
    CheckContext,
    EnvironmentProblem,
    NodeContext,
    PayloadProfile,
    PluginConfig,
    Source,
    StreamPacket,
)
from schnitzel_plugins.vision.frame import Frame
from schnitzel_plugins.vision.reader import ReadAhead

__all__ = ["VideoFile", "VideoFileConfig"]


class VideoFileConfig(PluginConfig):
    """Options of the video_file source."""

    path: str = Field(min_length=1, description="Video file; relative to the graph file.")
    loop: StrictBool = Field(default=False, description="Start again at the end, without end.")
    realtime: StrictBool = Field(
        default=False,
        description="Pace frames at the file's fps, as a camera would; false: as fast as the "
        "graph takes them.",
    )
    start_at: StrictFloat | StrictInt = Field(
        default=0, ge=0, description="Seconds into the file to start from."
    )
    camera_id: str | None = Field(
        default=None, min_length=1, description="The frames' source_id; defaults to the node id."
    )
    read_ahead: StrictInt = Field(
        default=2,
        ge=1,
        le=64,
        description="Frames decoded ahead of the graph (memory: each is width x height x 3 bytes).",
    )


class VideoFile(Source):
    """Frames of a video file (numpy BGR, in process); paced at its fps or as fast as taken."""

    name: ClassVar[str] = "video_file"
    Config: ClassVar[type[PluginConfig]] = VideoFileConfig
    emits = frozenset({"frame"})
    emits_profile = PayloadProfile.INPROC_ANY

    def __init__(self, config: Any, context: NodeContext) -> None:
        super().__init__(config, context)
        self._capture: Any = None
        self._reader: ReadAhead[tuple[Any, int, float]] | None = None
        self.fps = 0.0
        self.frames_read = 0

    @classmethod
    def check_environment(cls, config: Any, context: CheckContext) -> list[EnvironmentProblem]:
        path = context.resolve(config.path)
        if not path.is_file():
            return [
                EnvironmentProblem(
                    f"video file {path} does not exist",
                    "check the path (relative paths start at the graph file's directory)",
                    config_key="path",
                )
            ]
        return []

    async def open(self) -> None:
        import cv2

        path = self.context.resolve(self.config.path)
        capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        if not capture.isOpened():
            raise RuntimeError(
                f"cannot open video file {path}: OpenCV's FFmpeg backend refused it (not a "
                "video, or a codec this OpenCV build lacks)"
            )
        self.fps = float(capture.get(cv2.CAP_PROP_FPS)) or 25.0
        self._capture = capture
        frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))  # 0 where the container says none
        if frames > 0 and self.config.start_at >= frames / self.fps:
            capture.release()
            self._capture = None
            raise RuntimeError(
                f"start_at {self.config.start_at} s is past the end of video file {path} "
                f"({frames} frames, {frames / self.fps:.2f} s): no frame would be read; set "
                "a smaller `start_at`"
            )
        self._seek_start()

    def _seek_start(self) -> None:
        import cv2

        if self.config.start_at:
            self._capture.set(cv2.CAP_PROP_POS_MSEC, float(self.config.start_at) * 1000)

    def _read(self) -> tuple[Any, int, float] | None:
        """One decoded frame (image, index in the file, pts seconds), on the reader thread."""
        import cv2

        capture = self._capture
        index = int(capture.get(cv2.CAP_PROP_POS_FRAMES))
        ok, image = capture.read()
        if not ok and self.config.loop and self.frames_read:
            capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self._seek_start()
            index = int(capture.get(cv2.CAP_PROP_POS_FRAMES))
            ok, image = capture.read()
        if not ok:
            return None
        self.frames_read += 1
        return image, index, index / self.fps

    async def packets(self) -> AsyncIterator[StreamPacket]:
        camera = self.config.camera_id or self.context.node_id
        self._reader = reader = ReadAhead(
            self._read, self.config.read_ahead, f"video_file-{self.context.node_id}"
        )
        pace = 1.0 / self.fps if self.config.realtime else 0.0
        started = time.monotonic()
        seq = 0
        while True:
            item = await reader.next()
            if item is None:
                return
            image, index, pts = item
            if pace:
                delay = started + seq * pace - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            frame = Frame(image, camera, index, pts)
            yield StreamPacket.new("frame", camera, seq, frame)
            seq += 1

    async def close(self) -> None:
        ended = True
        if self._reader is not None:
            ended = await asyncio.to_thread(self._reader.stop)
        if self._capture is not None and ended:  # never free a capture a thread still reads
            self._capture.release()
