"""What the vision pack's packets carry: a frame, and a frame's detections (pure, no imports).

A `frame` packet's payload is a `Frame`: the image as a read-only numpy array (HxWx3, BGR,
uint8) plus where it came from. It lives only in this process (profile `inproc_any`): fan-out
hands the same object, never a copy, to every node, and the array is made read-only so no
node can change what the others see.

A `detection` packet's payload is a `FrameDetections`: the frame's metadata, the boxes found,
and the frame itself (pixels still attached for the nodes that follow in this process). Its
`portable_view()` is what a `jsonl` or `http` sink or a durable inbox writes: the metadata and
the detections as JSON, without pixels (docs/contracts/stream_packet.md, "Portable views").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy only for annotations: `schnitzel validate` need not load it
    import numpy as np

__all__ = ["Detection", "Frame", "FrameDetections"]


@dataclass(frozen=True, slots=True, eq=False)
class Frame:
    """One decoded image from a camera or file."""

    image: np.ndarray
    """HxWx3 BGR uint8, read-only: shared by every node the packet reaches."""
    camera_id: str
    """The camera (or file) it came from: the packet's `source_id`."""
    index: int
    """The frame's position in its stream (for a file: in the file, from 0)."""
    pts_s: float
    """Presentation time in seconds from the stream's start."""
    epoch: int = 0
    """Connection epoch: a reconnecting source starts a new one, so keys never repeat."""

    def __post_init__(self) -> None:
        self.image.flags.writeable = False

    @property
    def width(self) -> int:
        """Pixels across."""
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        """Pixels down."""
        return int(self.image.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes of pixels held: what a byte-bounded inbox counts."""
        return int(self.image.nbytes)

    def metadata(self) -> dict[str, Any]:
        """The frame without its pixels, as JSON."""
        return {
            "camera_id": self.camera_id,
            "frame_index": self.index,
            "pts_s": round(self.pts_s, 6),
            "epoch": self.epoch,
            "width": self.width,
            "height": self.height,
        }


@dataclass(frozen=True, slots=True)
class Detection:
    """One object found in a frame."""

    bbox: tuple[float, float, float, float]
    """x1, y1, x2, y2 in the frame's pixels."""
    confidence: float
    class_id: int
    class_name: str

    def to_json(self) -> dict[str, Any]:
        """The detection as JSON (boxes rounded to 0.1 px, confidence to 4 places)."""
        return {
            "bbox": [round(v, 1) for v in self.bbox],
            "confidence": round(self.confidence, 4),
            "class_id": self.class_id,
            "class_name": self.class_name,
        }


@dataclass(frozen=True, slots=True, eq=False)
class FrameDetections:
    """A frame's detections, with the frame (and its pixels) still attached in process."""

    frame: Frame
    detections: tuple[Detection, ...]
    model: str
    """The model file's name, for whoever reads the JSON later."""

    @property
    def nbytes(self) -> int:
        """Bytes of pixels held (the frame's): what a byte-bounded inbox counts."""
        return self.frame.nbytes

    def portable_view(self) -> dict[str, Any]:
        """What leaves the process: the frame's metadata and the detections, no pixels."""
        return {
            **self.frame.metadata(),
            "model": self.model,
            "detections": [d.to_json() for d in self.detections],
        }
