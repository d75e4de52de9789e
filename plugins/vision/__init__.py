"""The vision pack: video sources that emit frames, an ONNX object detector, a tracker, zones
and events.

Needs the `vision` extra (opencv-python-headless, onnxruntime, numpy, scipy). The pure logic
(`letterbox`, `decoders`, `nms`, `labels`, `detector`, `frame`, `tracker`, `tracked`,
`zoning`, `lifecycle`) imports nothing from the runtime; the plugins (`video_file`, `detect`,
`track`, `zones`, `events`) are thin shells over it. docs/vision.md.

Plugins are named by `PluginRef`s: a plugin's module is imported only when a graph uses it
(or `schnitzel plugins` lists them), so validating a graph costs only the plugins it names.
"""

import importlib.util

from schnitzel import PluginPack, PluginRef

_MISSING = [
    m for m in ("numpy", "cv2", "onnxruntime", "scipy") if importlib.util.find_spec(m) is None
]
if _MISSING:  # `schnitzel plugins` shows this as the broken pack's reason
    raise ImportError(
        f"the vision pack needs {', '.join(_MISSING)}: install the vision extra "
        "(pip install 'schnitzel[vision]')"
    )

__all__ = ["PACK"]

PACK = PluginPack(
    name="vision",
    plugins=(
        PluginRef("video_file", "source", "schnitzel_plugins.vision.video_file:VideoFile"),
        PluginRef("rtsp", "source", "schnitzel_plugins.vision.live_source:Rtsp"),
        PluginRef("camera", "source", "schnitzel_plugins.vision.live_source:Camera"),
        PluginRef("detect", "compute", "schnitzel_plugins.vision.detect:Detect"),
        PluginRef("blob_store", "compute", "schnitzel_plugins.vision.blob_store:BlobStoreNode"),
        PluginRef("track", "policy", "schnitzel_plugins.vision.track:Track"),
        PluginRef("zones", "policy", "schnitzel_plugins.vision.zones:Zones"),
        PluginRef("events", "transform", "schnitzel_plugins.vision.events:Events"),
    ),
    description="Cameras and video files in, frames through, objects detected and tracked "
    "(docs/vision.md).",
)
