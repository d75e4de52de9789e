"""The transports pack: NATS JetStream and MQTT beyond one box (DESIGN §4).

Its client libraries come with the `transports` extra (`pip install schnitzel[transports]`);
the plugins import them only when a node opens, so graphs validate without them.
"""

from schnitzel.registry.plugin import PluginPack
from schnitzel_plugins.transports.mqtt_sink import MqttSink
from schnitzel_plugins.transports.mqtt_source import MqttSource
from schnitzel_plugins.transports.nats_sink import NatsSink
from schnitzel_plugins.transports.nats_source import NatsSource

__all__ = ["PACK", "MqttSink", "MqttSource", "NatsSink", "NatsSource"]

PACK = PluginPack(
    name="transports",
    plugins=(NatsSink, NatsSource, MqttSink, MqttSource),
    description="NATS JetStream and MQTT transports.",
)
