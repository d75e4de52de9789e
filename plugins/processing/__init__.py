"""The processing pack: expressions (`filter`, `map`, `route`), the policies `threshold`,
`rate_limit` and `deadband` (docs/processing.md), windows and aggregates (`window`) and time
fusion of streams (`fuse`) (docs/processing-windows.md).

Plugins are named by `PluginRef`s: a plugin's module is imported only when a graph uses it
(or `schnitzel plugins` lists them), so validating a graph costs only the plugins it names.
"""

from schnitzel import PluginPack, PluginRef

__all__ = ["PACK"]

_HERE = "schnitzel_plugins.processing"

PACK = PluginPack(
    name="processing",
    plugins=(
        PluginRef("filter", "transform", f"{_HERE}.filter:Filter"),
        PluginRef("map", "transform", f"{_HERE}.map:Map"),
        PluginRef("route", "transform", f"{_HERE}.route:Route"),
        PluginRef("threshold", "policy", f"{_HERE}.threshold:Threshold"),
        PluginRef("rate_limit", "policy", f"{_HERE}.rate_limit:RateLimit"),
        PluginRef("deadband", "policy", f"{_HERE}.deadband:Deadband"),
        PluginRef("window", "transform", f"{_HERE}.window:Window"),
        PluginRef("fuse", "transform", f"{_HERE}.fuse:Fuse"),
    ),
    description=(
        "Everyday stream processing: expressions, alerts and rate policies, windows and "
        "aggregates, time fusion of streams."
    ),
)
