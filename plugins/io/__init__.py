"""The io pack: JSON Lines files as sources and sinks.

Plugins are named by `PluginRef`s: a plugin's module is imported only when a graph uses it
(or `schnitzel plugins` lists them), so validating a graph costs only the plugins it names.
"""

from schnitzel import PluginPack, PluginRef

__all__ = ["PACK"]

PACK = PluginPack(
    name="io",
    plugins=(
        PluginRef("jsonl", "source", "schnitzel_plugins.io.jsonl:JsonlSource"),
        PluginRef("jsonl", "sink", "schnitzel_plugins.io.jsonl_sink:JsonlSink"),
    ),
    description="Files: JSON Lines in and out.",
)
