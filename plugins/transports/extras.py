"""The transports pack's optional dependencies, imported when a node opens (`import_extra`):
one place for each library's package name, extra and error, for its source and its sink."""

from __future__ import annotations

from schnitzel import import_extra
from schnitzel_plugins.transports.errors import MqttError, NatsError

__all__ = ["require_nats", "require_paho"]


def require_paho(node_id: str) -> None:
    """paho-mqtt, or MqttError naming the node and `schnitzel[transports]`."""
    import_extra(
        "paho.mqtt.client",
        node_id=node_id,
        needed_by="the mqtt plugin",
        package="paho-mqtt",
        extra="transports",
        error=MqttError,
    )


def require_nats(node_id: str) -> None:
    """nats-py, or NatsError naming the node and `schnitzel[transports]`."""
    import_extra(
        "nats",
        node_id=node_id,
        needed_by="the nats plugin",
        package="nats-py",
        extra="transports",
        error=NatsError,
    )
