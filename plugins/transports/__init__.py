"""The transports pack: NATS JetStream (and later MQTT) beyond one box (DESIGN §4).

Its client libraries come with the `transports` extra (`pip install schnitzel[transports]`);
the plugins import them only when a node opens, so graphs validate without them.
"""

from schnitzel import PluginPack
from schnitzel_plugins.transports.nats_sink import NatsSink
from schnitzel_plugins.transports.nats_source import NatsSource

__all__ = ["PACK", "NatsSink", "NatsSource"]

PACK = PluginPack(
    name="transports", plugins=(NatsSink, NatsSource), description="NATS JetStream transport."
)
