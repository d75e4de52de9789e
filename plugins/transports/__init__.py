"""The transports pack: NATS JetStream (and later MQTT) beyond one box (DESIGN §4).

Its client libraries come with the `transports` extra (`pip install schnitzel[transports]`);
the plugins import them only when a node opens, so graphs validate without them.
"""

from schnitzel.registry.plugin import PluginPack
from schnitzel_plugins.transports.nats_sink import NatsSink

__all__ = ["PACK", "NatsSink"]

PACK = PluginPack(name="transports", plugins=(NatsSink,), description="NATS JetStream transport.")
