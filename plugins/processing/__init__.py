"""The processing pack: expressions (`filter`, `map`, `route`) and the policies `threshold`,
`rate_limit` and `deadband` (docs/processing.md)."""

from schnitzel.registry.plugin import PluginPack
from schnitzel_plugins.processing.deadband import Deadband
from schnitzel_plugins.processing.filter import Filter
from schnitzel_plugins.processing.map import Map
from schnitzel_plugins.processing.rate_limit import RateLimit
from schnitzel_plugins.processing.route import Route
from schnitzel_plugins.processing.threshold import Threshold

__all__ = ["PACK", "Deadband", "Filter", "Map", "RateLimit", "Route", "Threshold"]

PACK = PluginPack(
    name="processing",
    plugins=(Filter, Map, Route, Threshold, RateLimit, Deadband),
    description="Everyday stream processing: expressions, alerts and rate policies.",
)
