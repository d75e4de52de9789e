"""The processing pack: expressions (`filter`, `map`, `route`), the policies `threshold`,
`rate_limit` and `deadband` (docs/processing.md), windows and aggregates (`window`) and time
fusion of streams (`fuse`) (docs/processing-windows.md)."""

from schnitzel import PluginPack
from schnitzel_plugins.processing.deadband import Deadband
from schnitzel_plugins.processing.filter import Filter
from schnitzel_plugins.processing.fuse import Fuse
from schnitzel_plugins.processing.map import Map
from schnitzel_plugins.processing.rate_limit import RateLimit
from schnitzel_plugins.processing.route import Route
from schnitzel_plugins.processing.threshold import Threshold
from schnitzel_plugins.processing.window import Window

__all__ = [
    "PACK",
    "Deadband",
    "Filter",
    "Fuse",
    "Map",
    "RateLimit",
    "Route",
    "Threshold",
    "Window",
]

PACK = PluginPack(
    name="processing",
    plugins=(Filter, Map, Route, Threshold, RateLimit, Deadband, Window, Fuse),
    description=(
        "Everyday stream processing: expressions, alerts and rate policies, windows and "
        "aggregates, time fusion of streams."
    ),
)
