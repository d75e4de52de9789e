"""`rtsp` and `camera`: live sources with reconnect, timeouts per capture, a stall watchdog
and latest-frame-only reading (the machinery is in `live.py`)."""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import Field, StrictFloat, StrictInt, field_validator

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
from schnitzel_plugins.vision.live import Backoff, LatestFrameReader

__all__ = ["Camera", "CameraConfig", "Rtsp", "RtspConfig", "redact_url"]

_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


def redact_url(url: str) -> str:
    """The URL with any user and password replaced by `***`: what logs and errors show."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


class LiveConfig(PluginConfig):
    """Options shared by the live sources."""

    camera_id: str | None = Field(
        default=None, min_length=1, description="The frames' source_id; defaults to the node id."
    )
    open_timeout_s: StrictFloat | StrictInt = Field(
        default=10, gt=0, le=600, description="Give up opening the stream after this long."
    )
    read_timeout_s: StrictFloat | StrictInt = Field(
        default=5, gt=0, le=600, description="A read that waits longer fails (and reconnects)."
    )
    stall_s: StrictFloat | StrictInt = Field(
        default=10, gt=0, le=3600, description="No frame for this long while connected: reconnect."
    )
    backoff_first_s: StrictFloat | StrictInt = Field(
        default=0.5, gt=0, description="First delay before reconnecting; doubles each failure."
    )
    backoff_max_s: StrictFloat | StrictInt = Field(
        default=10, gt=0, description="Longest delay between reconnection attempts."
    )


class RtspConfig(LiveConfig):
    """Options of the rtsp source."""

    url: str = Field(
        min_length=1,
        description="rtsp:// URL without credentials; they come from username_env/password_env.",
    )
    username_env: str | None = Field(
        default=None, pattern=_ENV_NAME, description="Environment variable with the user name."
    )
    password_env: str | None = Field(
        default=None, pattern=_ENV_NAME, description="Environment variable with the password."
    )

    @field_validator("url")
    @classmethod
    def _no_credentials_in_the_file(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme.lower() not in ("rtsp", "rtsps", "rtmp", "http", "https"):
            raise ValueError(f"{parts.scheme or 'no'} scheme: give an rtsp:// URL")
        if parts.password is not None:
            raise ValueError(
                "the URL holds a password; keep it out of the graph file: put it in an "
                "environment variable and name it in password_env (and the user in username_env)"
            )
        return value


class CameraConfig(LiveConfig):
    """Options of the camera source."""

    device: StrictInt | str = Field(
        default=0, description="V4L2 device: an index (0 = /dev/video0) or a path."
    )
    width: StrictInt | None = Field(
        default=None, ge=1, description="Ask the camera for this width."
    )
    height: StrictInt | None = Field(default=None, ge=1, description="Ask for this height.")
    fps: StrictFloat | StrictInt | None = Field(default=None, gt=0, description="Ask for this fps.")


class _LiveSource(Source):
    """Shared by rtsp and camera: the reader thread, frames out, health."""

    emits = frozenset({"frame"})
    emits_profile = PayloadProfile.INPROC_ANY

    def __init__(self, config: Any, context: NodeContext) -> None:
        super().__init__(config, context)
        self.reader: LatestFrameReader | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _capture(self) -> Any:  # pragma: no cover - each source opens its own
        raise NotImplementedError

    def _timeouts(self) -> list[int]:
        import cv2

        c = self.config
        return [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(c.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(c.read_timeout_s * 1000),
        ]

    def _event(self, level: str, message: str) -> None:
        """From the reader thread: into the run's event log, on the loop (console, ctl)."""
        text = f"camera {self._camera()}: {message}"
        loop = self._loop  # set before the reader thread starts
        try:
            if loop is None:
                raise RuntimeError("no event loop yet")
            loop.call_soon_threadsafe(self.context.event, level, text)
        except RuntimeError:  # the loop is closed: the run is over; the log still hears it
            self.context.logger.info("%s", text)

    def _camera(self) -> str:
        return self.config.camera_id or self.context.node_id

    async def packets(self) -> AsyncIterator[StreamPacket]:
        c = self.config
        self._loop = asyncio.get_running_loop()
        self.reader = reader = LatestFrameReader(
            self._capture,
            f"{self.name}-{self.context.node_id}",
            float(c.stall_s),
            Backoff(float(c.backoff_first_s), float(c.backoff_max_s)),
            self._event,
        )
        camera = self._camera()
        seq = 0
        while True:
            live = await reader.next()
            frame = Frame(live.image, camera, live.index, live.pts_s, live.epoch)
            key = f"{camera}:{live.epoch}:{live.index}"
            yield StreamPacket.new("frame", camera, seq, frame, {"idempotency_key": key})
            seq += 1

    def stats(self) -> dict[str, Any]:
        """Per-camera health: connection, frames in and out, skipped, reconnects, last-frame age."""
        if self.reader is None:
            return {"connected": False}
        return self.reader.stats.as_dict(time.monotonic())

    async def close(self) -> None:
        if self.reader is not None:
            await asyncio.to_thread(self.reader.stop)


class Rtsp(_LiveSource):
    """Frames of an RTSP stream: reconnects with backoff, latest frame only, stall watchdog."""

    name: ClassVar[str] = "rtsp"
    Config: ClassVar[type[PluginConfig]] = RtspConfig

    @classmethod
    def check_environment(cls, config: Any, context: CheckContext) -> list[EnvironmentProblem]:
        return [
            EnvironmentProblem(
                f"environment variable {name} ({key}) is not set",
                f"export {name} in the environment the graph runs in (a systemd unit: "
                "EnvironmentFile=)",
                config_key=key,
                severity="warning",
            )
            for key in ("username_env", "password_env")
            if (name := getattr(config, key)) is not None and name not in os.environ
        ]

    async def open(self) -> None:
        if os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS"):
            self.context.event(
                "warning",
                f"camera {self._camera()}: OPENCV_FFMPEG_CAPTURE_OPTIONS is set; it replaces "
                "OpenCV's defaults for every capture in this process (RTSP over TCP among "
                "them): unset it and use this node's options",
            )

    def _url(self) -> str:
        c = self.config
        user = os.environ.get(c.username_env, "") if c.username_env else ""
        password = os.environ.get(c.password_env, "") if c.password_env else ""
        if not (user or password):
            return c.url
        parts = urlsplit(c.url)
        credentials = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
        host = parts.netloc.rsplit("@", 1)[-1]
        return urlunsplit((parts.scheme, f"{credentials}@{host}", parts.path, parts.query, ""))

    def _capture(self) -> Any:
        import cv2

        # Timeouts are parameters of this capture, not OPENCV_FFMPEG_CAPTURE_OPTIONS (one
        # variable for the whole process, read by every capture as it opens: cameras race).
        # OpenCV's FFmpeg backend reads RTSP over TCP unless that variable says otherwise.
        capture = cv2.VideoCapture(self._url(), cv2.CAP_FFMPEG, self._timeouts())
        if not capture.isOpened():
            capture.release()
            raise ConnectionError(f"{redact_url(self.config.url)} did not open")
        return capture


class Camera(_LiveSource):
    """Frames of a local camera (V4L2 index or path), with the rtsp source's reconnect rules."""

    name: ClassVar[str] = "camera"
    Config: ClassVar[type[PluginConfig]] = CameraConfig

    def _capture(self) -> Any:
        import cv2

        c = self.config
        device = c.device
        if isinstance(device, str) and re.fullmatch(r"\d+", device):
            device = int(device)
        capture = cv2.VideoCapture(device, cv2.CAP_ANY, self._timeouts())
        if not capture.isOpened():
            capture.release()
            raise ConnectionError(f"camera {c.device} did not open (unplugged, or busy?)")
        for prop, value in (
            (cv2.CAP_PROP_FRAME_WIDTH, c.width),
            (cv2.CAP_PROP_FRAME_HEIGHT, c.height),
            (cv2.CAP_PROP_FPS, c.fps),
        ):
            if value is not None:
                capture.set(prop, float(value))
        return capture
