"""The transports pack: NATS JetStream and MQTT beyond one box (DESIGN §4).

Its client libraries come with the `transports` extra (`pip install schnitzel[transports]`);
the plugins import them only when a node opens, so graphs validate without them.

Plugins are named by `PluginRef`s: a plugin's module is imported only when a graph uses it
(or `schnitzel plugins` lists them), so validating a graph costs only the plugins it names.
"""

from schnitzel import PluginPack, PluginRef

__all__ = ["PACK"]

_HERE = "schnitzel_plugins.transports"

PACK = PluginPack(
    name="transports",
    plugins=(
        PluginRef("nats", "sink", f"{_HERE}.nats_sink:NatsSink"),
        PluginRef("nats", "source", f"{_HERE}.nats_source:NatsSource"),
        PluginRef("mqtt", "sink", f"{_HERE}.mqtt_sink:MqttSink"),
        PluginRef("mqtt", "source", f"{_HERE}.mqtt_source:MqttSource"),
    ),
    description="NATS JetStream and MQTT transports.",
)
