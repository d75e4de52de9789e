"""Reading a live stream (RTSP, a local camera): reconnect with backoff and jitter, a stall
watchdog, and latest-frame-only delivery (no runtime import).

`LatestFrameReader` runs the capture on a thread of its own. It keeps only the newest frame:
when the graph is slower than the camera, older frames are replaced and counted as `skipped`
(a choice, not a loss: nothing was accepted and then dropped), so a slow detector never builds
decode lag. When the stream fails (cannot open, a read fails or times out, no frame for
`stall_s`), the capture is released and opened again after a backoff of 0.5 s doubling to
10 s, each delay +-20% at random so cameras behind one switch do not reconnect in step. Each
successful connection starts a new `epoch` (milliseconds since the Unix epoch when it opened),
so frame keys `<camera>:<epoch>:<index>` are never reused, across reconnects and restarts.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["Backoff", "LatestFrameReader", "LiveFrame", "LiveStats"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays between reconnection attempts: `first` doubling to `most`, each +-`jitter`."""

    first: float = 0.5
    most: float = 10.0
    jitter: float = 0.2

    def delays(self, rng: random.Random) -> Iterator[float]:
        """The delays before attempt 1, 2, ... (endless)."""
        delay = self.first
        while True:
            yield delay * rng.uniform(1 - self.jitter, 1 + self.jitter)
            delay = min(self.most, delay * 2)


@dataclass(slots=True)
class LiveStats:
    """What the operator needs to know about one camera (read from the loop; written by the
    reader thread: plain counters, each written by one thread)."""

    frames_in: int = 0
    """Frames read from the stream."""
    frames_out: int = 0
    """Frames handed to the graph."""
    skipped: int = 0
    """Frames replaced by a newer one before the graph took them (latest-frame-only)."""
    reconnects: int = 0
    """Connections opened after the first."""
    stalls: int = 0
    """Times no frame came for `stall_s` while connected (the watchdog reconnected)."""
    connected: bool = False
    epoch: int = 0
    last_frame_at: float = 0.0
    """Monotonic time of the last frame read (0: none yet)."""
    last_error: str = ""
    interval_in: float = 0.0
    """Smoothed seconds between frames read (EWMA): 1 / fps in."""
    interval_out: float = 0.0
    """Smoothed seconds between frames handed on: 1 / fps out."""
    last_out_at: float = 0.0

    def frame_out(self, now: float) -> None:
        """Count a frame handed to the graph (on the loop)."""
        if self.last_out_at:
            self.interval_out = _smooth(self.interval_out, now - self.last_out_at)
        self.last_out_at = now
        self.frames_out += 1

    def as_dict(self, now: float) -> dict[str, Any]:
        """The figures as JSON, with the last frame's age in seconds (None before any)."""
        return {
            "connected": self.connected,
            "epoch": self.epoch,
            "fps_in": _rate(self.interval_in, now - self.last_frame_at),
            "fps_out": _rate(self.interval_out, now - self.last_out_at),
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "skipped": self.skipped,
            "reconnects": self.reconnects,
            "stalls": self.stalls,
            "last_frame_age_s": round(now - self.last_frame_at, 3) if self.last_frame_at else None,
            "last_error": self.last_error,
        }


def _smooth(average: float, sample: float) -> float:
    return sample if average == 0.0 else average + 0.1 * (sample - average)


def _rate(interval: float, since_last: float) -> float:
    """Frames per second from the smoothed interval; a stream gone quiet decays towards 0."""
    if interval <= 0.0:
        return 0.0
    return round(1.0 / max(interval, since_last), 2)


@dataclass(frozen=True, slots=True)
class LiveFrame:
    """One frame as read: the image, its index within its connection, and the connection."""

    image: Any
    index: int
    epoch: int
    pts_s: float


class LatestFrameReader:
    """A live capture on its own thread; the graph takes the newest frame."""

    def __init__(
        self,
        open_capture: Callable[[], Any],
        name: str,
        stall_s: float,
        backoff: Backoff = Backoff(),
        on_event: Callable[[str, str], None] = lambda level, message: None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._open = open_capture
        self._name = name
        self._stall_s = stall_s
        self._backoff = backoff
        self._on_event = on_event
        self._rng = rng or random.Random()
        self._clock = clock
        self.stats = LiveStats()
        self._lock = threading.Lock()
        self._latest: LiveFrame | None = None
        self._stop = threading.Event()
        self._loop = asyncio.get_running_loop()
        self._ready = asyncio.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # --- the reader thread -------------------------------------------------------------
    def _run(self) -> None:
        delays = self._backoff.delays(self._rng)
        ever_connected = False
        while not self._stop.is_set():
            try:
                capture = self._open()
            except Exception as exc:
                capture, error = None, str(exc)
            else:
                error = "" if capture is not None else "the stream did not open"
            if capture is None:
                self.stats.last_error = error
                delay = next(delays)
                self._on_event("warning", f"cannot connect: {error}; next try in {delay:.1f} s")
                self._stop.wait(delay)
                continue
            delays = self._backoff.delays(self._rng)  # connected: start the backoff again
            stats = self.stats
            stats.epoch = max(time.time_ns() // 1_000_000, stats.epoch + 1)
            stats.connected = True
            if ever_connected:
                stats.reconnects += 1
                self._on_event("info", f"reconnected (epoch {stats.epoch})")
            else:
                self._on_event("info", f"connected (epoch {stats.epoch})")
            ever_connected = True
            reason = self._read_until_failure(capture)
            if not self._stop.is_set():
                stats.last_error = reason  # before `connected` turns false: readers see why
            stats.connected = False
            capture.release()
            if not self._stop.is_set():
                self._on_event("warning", f"stream lost: {reason}; reconnecting")

    def _read_until_failure(self, capture: Any) -> str:
        stats = self.stats
        index = 0
        connected_at = self._clock()
        while not self._stop.is_set():
            ok, image = capture.read()
            now = self._clock()
            if not ok or image is None:
                return "no frame (the read failed or timed out)"
            last = stats.last_frame_at if index else connected_at
            if now - last > self._stall_s:  # the read came back, but far too late
                stats.stalls += 1
                return f"stalled: no frame for {now - last:.1f} s (stall_s {self._stall_s:g})"
            stats.frames_in += 1
            if index:
                stats.interval_in = _smooth(stats.interval_in, now - stats.last_frame_at)
            stats.last_frame_at = now
            frame = LiveFrame(image, index, stats.epoch, now - connected_at)
            index += 1
            with self._lock:
                if self._latest is not None:
                    stats.skipped += 1
                self._latest = frame
            try:
                self._loop.call_soon_threadsafe(self._ready.set)
            except RuntimeError:  # the loop is closed: nobody takes frames any more
                return "stopped"
        return "stopped"

    # --- the consumer (event loop) -----------------------------------------------------
    async def next(self) -> LiveFrame:
        """The newest frame not yet taken; waits for one."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            with self._lock:
                frame, self._latest = self._latest, None
            if frame is not None:
                self.stats.frame_out(self._clock())
                return frame

    def stop(self, timeout: float = 10.0) -> bool:
        """Ask the thread to end; True when it did within `timeout`."""
        self._stop.set()
        self._thread.join(timeout)
        return not self._thread.is_alive()
