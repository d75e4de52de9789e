"""The io pack: JSON Lines files as sources and sinks."""

from schnitzel_plugins.io.jsonl import JsonlSink, JsonlSource

from schnitzel.registry.plugin import PluginPack

__all__ = ["PACK", "JsonlSink", "JsonlSource"]

PACK = PluginPack(
    name="io",
    plugins=(JsonlSource, JsonlSink),
    description="Files: JSON Lines in and out.",
)
