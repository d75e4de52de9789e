"""The processing pack: windows and aggregates (`window`) and time fusion of streams (`fuse`)."""

from schnitzel import PluginPack
from schnitzel_plugins.processing.fuse import Fuse
from schnitzel_plugins.processing.window import Window

__all__ = ["PACK", "Fuse", "Window"]

PACK = PluginPack(
    name="processing",
    plugins=(Window, Fuse),
    description="Stream processing: windows and aggregates, time fusion of streams.",
)
