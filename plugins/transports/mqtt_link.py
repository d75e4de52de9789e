"""A paho-mqtt client as the mqtt nodes use it: MQTT 5 (or 3.1.1), a persistent session.

paho-mqtt runs its network loop on a thread of its own (`loop_start`) and calls back on that
thread; the nodes hand every callback to their event loop (`call_soon_threadsafe`) and call
`publish` and `ack` from the event loop, which paho allows (its output queue is locked).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from schnitzel_plugins.transports.mqtt_config import KEY_PROPERTY, Broker, MqttNodeConfig

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt
    from paho.mqtt.properties import Properties

__all__ = ["client_id_of", "connect_options", "key_property", "new_client", "publish_properties"]


def client_id_of(config: MqttNodeConfig, node_id: str) -> str:
    """The client id the broker keeps the node's session under: `client_id`, or
    `schnitzel-<node id>`."""
    return config.client_id or f"schnitzel-{node_id}"


def new_client(
    config: MqttNodeConfig, node_id: str, *, manual_ack: bool, reconnect: bool
) -> mqtt.Client:
    """A client for `config`'s broker, its session kept by the broker (clean_start=False,
    clean_session=False for 3.1.1); `manual_ack`: PUBACK only when `ack` is called;
    `reconnect`: paho reconnects by itself when the link drops."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    v5 = config.protocol == "5"
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id_of(config, node_id),
        clean_session=None if v5 else False,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        reconnect_on_failure=reconnect,
        manual_ack=manual_ack,
    )
    broker: Broker = config.broker()
    if broker.username is not None:
        client.username_pw_set(broker.username, broker.password)
    if broker.tls:
        client.tls_set()
    return client


def connect_options(config: MqttNodeConfig, receive_maximum: int | None = None) -> dict[str, Any]:
    """What `connect`/`connect_async` take besides host and port: the keepalive, and for MQTT
    5 clean_start=False with the session expiry (and the receive maximum, for a source)."""
    options: dict[str, Any] = {"keepalive": config.keepalive_s}
    if config.protocol == "5":
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = config.session_expiry_s
        if receive_maximum is not None:
            properties.ReceiveMaximum = receive_maximum
        options.update(clean_start=False, properties=properties)
    return options


def publish_properties(key: str) -> Properties:
    """The PUBLISH properties carrying `key` as the user property `idempotency-key`."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    properties = Properties(PacketTypes.PUBLISH)
    properties.UserProperty = [(KEY_PROPERTY, key)]
    return properties


def key_property(message: mqtt.MQTTMessage) -> str | None:
    """The `idempotency-key` user property of a received message, if it has one."""
    properties = getattr(message, "properties", None)
    for name, value in getattr(properties, "UserProperty", None) or ():
        if name == KEY_PROPERTY:
            return str(value)
    return None
