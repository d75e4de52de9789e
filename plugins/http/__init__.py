"""The http pack: deliver packets to an HTTP backend.

Plugins are named by `PluginRef`s: a plugin's module is imported only when a graph uses it
(or `schnitzel plugins` lists them), so validating a graph costs only the plugins it names.
"""

from schnitzel import PluginPack, PluginRef

__all__ = ["PACK"]

PACK = PluginPack(
    name="http",
    plugins=(PluginRef("http", "sink", "schnitzel_plugins.http.sink:HttpSink"),),
    description="HTTP delivery.",
)
