"""The transports pack: NATS JetStream (and later MQTT) beyond one box (DESIGN §4).

Its client libraries come with the `transports` extra (`pip install schnitzel[transports]`);
the plugins import them only when a node opens, so graphs validate without them.

Plugins are named by `PluginRef`s: a plugin's module is imported only when a graph uses it
(or `schnitzel plugins` lists them), so validating a graph costs only the plugins it names.
"""

from schnitzel import PluginPack, PluginRef

__all__ = ["PACK"]

PACK = PluginPack(
    name="transports",
    plugins=(
        PluginRef("nats", "sink", "schnitzel_plugins.transports.nats_sink:NatsSink"),
        PluginRef("nats", "source", "schnitzel_plugins.transports.nats_source:NatsSource"),
    ),
    description="NATS JetStream transport.",
)
