"""The vision pack: video sources that emit frames, an ONNX object detector, a tracker, zones
and events.

Needs the `vision` extra (opencv-python-headless, onnxruntime, numpy, scipy). The pure logic
(`letterbox`, `decoders`, `nms`, `labels`, `detector`, `frame`, `tracker`, `tracked`,
`zoning`, `lifecycle`) imports nothing from the runtime; the plugins (`video_file`, `detect`,
`track`, `zones`, `events`) are thin shells over it. docs/vision.md.
"""

import importlib.util

from schnitzel import PluginPack

_MISSING = [
    m for m in ("numpy", "cv2", "onnxruntime", "scipy") if importlib.util.find_spec(m) is None
]
if _MISSING:  # `schnitzel plugins` shows this as the broken pack's reason
    raise ImportError(
        f"the vision pack needs {', '.join(_MISSING)}: install the vision extra "
        "(pip install 'schnitzel[vision]')"
    )

# ruff: noqa: E402 - the check above must run before the imports that need the extra
from schnitzel_plugins.vision.blob_store import BlobStoreNode
from schnitzel_plugins.vision.detect import Detect
from schnitzel_plugins.vision.events import Events
from schnitzel_plugins.vision.live_source import Camera, Rtsp
from schnitzel_plugins.vision.track import Track
from schnitzel_plugins.vision.video_file import VideoFile
from schnitzel_plugins.vision.zones import Zones

__all__ = [
    "PACK",
    "BlobStoreNode",
    "Camera",
    "Detect",
    "Events",
    "Rtsp",
    "Track",
    "VideoFile",
    "Zones",
]

PACK = PluginPack(
    name="vision",
    plugins=(VideoFile, Rtsp, Camera, Detect, BlobStoreNode, Track, Zones, Events),
    description="Cameras and video files in, frames through, objects detected and tracked "
    "(docs/vision.md).",
)
