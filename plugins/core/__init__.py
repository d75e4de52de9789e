"""The core pack: synthetic source, passthrough, sample, dedup, delay and null sink."""

from schnitzel import PluginPack
from schnitzel_plugins.core.dedup import Dedup
from schnitzel_plugins.core.delay import DelayPlugin
from schnitzel_plugins.core.null import NullSink
from schnitzel_plugins.core.passthrough import Passthrough
from schnitzel_plugins.core.sample import Sample
from schnitzel_plugins.core.synthetic import Synthetic

__all__ = ["PACK", "Dedup", "DelayPlugin", "NullSink", "Passthrough", "Sample", "Synthetic"]

PACK = PluginPack(
    name="core",
    plugins=(Synthetic, Passthrough, Sample, Dedup, DelayPlugin, NullSink),
    description="Reference plugins every graph can use (DESIGN 3.7).",
)
