"""The io pack: JSON Lines files as sources and sinks."""

from schnitzel import PluginPack
from schnitzel_plugins.io.jsonl import JsonlSource
from schnitzel_plugins.io.jsonl_sink import JsonlSink

__all__ = ["PACK", "JsonlSink", "JsonlSource"]

PACK = PluginPack(
    name="io",
    plugins=(JsonlSource, JsonlSink),
    description="Files: JSON Lines in and out.",
)
