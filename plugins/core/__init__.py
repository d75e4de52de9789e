"""The core pack: synthetic source, passthrough, sample, dedup, delay and null sink.

Plugins are named by `PluginRef`s: a plugin's module is imported only when a graph uses it
(or `schnitzel plugins` lists them), so validating a graph costs only the plugins it names.
"""

from schnitzel import PluginPack, PluginRef

__all__ = ["PACK"]

PACK = PluginPack(
    name="core",
    plugins=(
        PluginRef("synthetic", "source", "schnitzel_plugins.core.synthetic:Synthetic"),
        PluginRef("passthrough", "transform", "schnitzel_plugins.core.passthrough:Passthrough"),
        PluginRef("sample", "transform", "schnitzel_plugins.core.sample:Sample"),
        PluginRef("dedup", "policy", "schnitzel_plugins.core.dedup:Dedup"),
        PluginRef("delay", "delay", "schnitzel_plugins.core.delay:DelayPlugin"),
        PluginRef("null", "sink", "schnitzel_plugins.core.null:NullSink"),
    ),
    description="Reference plugins every graph can use (DESIGN 3.7).",
)
