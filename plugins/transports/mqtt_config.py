"""Options of the `mqtt` nodes, and the broker address they share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Self
from urllib.parse import unquote, urlsplit

from pydantic import Field, StrictFloat, StrictInt, field_validator, model_validator

from schnitzel import PluginConfig
from schnitzel_plugins.transports.config import AckedSinkConfig

__all__ = [
    "KEY_PROPERTY",
    "Broker",
    "MqttNodeConfig",
    "MqttSinkConfig",
    "MqttSourceConfig",
    "broker_of",
    "valid_topic",
]

KEY_PROPERTY = "idempotency-key"
"""The MQTT 5 user property that carries a packet's idempotency key."""

_SCHEMES = {"mqtt": 1883, "mqtts": 8883}
_CLIENT_ID = r"^[A-Za-z0-9_.:-]{1,128}$"
_FIELD = r"^(kind|source_id|meta(\.[^.]+)+|payload(\.[^.]+)+)$"


def valid_topic(topic: str) -> bool:
    """True for a topic one may publish on: not empty, no wildcards (+ #), no NUL."""
    return bool(topic) and not any(c in topic for c in "+#\0") and len(topic.encode()) < 65536


@dataclass(frozen=True)
class Broker:
    """Where the broker is, read from the node's `url`."""

    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None

    @property
    def shown(self) -> str:
        """The broker as logs and errors show it: no user or password."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def broker_of(url: str) -> Broker:
    """The broker `url` (mqtt://[user:password@]host[:port], mqtts:// for TLS) names."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{url!r} is not a valid URL: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError(f"{url!r} is not an MQTT broker URL; write it like mqtt://127.0.0.1:1883")
    return Broker(
        host=parts.hostname,
        port=port or _SCHEMES[scheme],
        tls=scheme == "mqtts",
        username=None if parts.username is None else unquote(parts.username),
        password=None if parts.password is None else unquote(parts.password),
    )


class MqttNodeConfig(PluginConfig):
    """Options both mqtt nodes take: the broker, the client id, the protocol, the session."""

    url: str = Field(
        description="The broker: mqtt://host:1883, mqtts://host:8883 for TLS; a user and "
        "password go in the URL (mqtt://user:password@host).",
    )
    client_id: str | None = Field(
        default=None,
        pattern=_CLIENT_ID,
        description="The MQTT client id; the broker keeps a persistent session under it, so "
        "two runtimes must not share one. Default: schnitzel-<node id>.",
    )
    protocol: Literal["5", "3.1.1"] = Field(
        default="5",
        description="MQTT version. 5: the key travels in a user property and the session "
        "expires after session_expiry_s; 3.1.1 for brokers without MQTT 5 (nats-server's "
        "listener): the key is still inside the encoded packet.",
    )
    session_expiry_s: StrictInt = Field(
        default=86400,
        ge=0,
        le=4294967295,
        description="How long the broker keeps this client's session (its subscriptions and "
        "the QoS 1 messages it has not acknowledged) while the client is away (MQTT 5).",
    )
    keepalive_s: StrictInt = Field(
        default=30, ge=5, le=65535, description="MQTT keepalive: how soon a dead link is noticed."
    )

    @field_validator("url")
    @classmethod
    def _is_a_broker(cls, url: str) -> str:
        broker_of(url)
        return url

    def broker(self) -> Broker:
        """The broker, with the user and password the URL holds."""
        return broker_of(self.url)


class MqttSinkConfig(MqttNodeConfig, AckedSinkConfig):
    """Options of the mqtt sink."""

    topic: str | None = Field(
        default=None,
        description="The topic every packet is published on (no wildcards). Give this or "
        "topic_field.",
    )
    topic_field: str | None = Field(
        default=None,
        pattern=_FIELD,
        description="Publish each packet on the topic its field holds: kind, source_id, "
        "meta.KEY[.KEY...] or payload.KEY[.KEY...]. A packet without it is refused (on_error).",
    )

    @field_validator("topic")
    @classmethod
    def _topic_is_publishable(cls, topic: str | None) -> str | None:
        if topic is not None and not valid_topic(topic):
            raise ValueError(
                f"topic {topic!r} cannot be published on: give a non-empty topic without the "
                "wildcards + and #"
            )
        return topic

    @model_validator(mode="after")
    def _one_topic(self) -> Self:
        if (self.topic is None) == (self.topic_field is None):
            raise ValueError(
                "give exactly one of topic (one topic for every packet) and topic_field (the "
                "packet field holding each packet's topic)"
            )
        return self


class MqttSourceConfig(MqttNodeConfig):
    """Options of the mqtt source."""

    topic: str = Field(
        description="The topic filter to subscribe to (wildcards + and # allowed), QoS 1.",
    )
    receive_maximum: StrictInt = Field(
        default=1024,
        ge=1,
        le=65535,
        description="Messages the broker may send before this node acknowledged them (MQTT 5 "
        "Receive Maximum; the broker's own limit applies too): how many are held beyond what "
        "downstream took.",
    )
    kind: str = Field(
        default="event",
        pattern=r"^[a-z0-9_-]+$",
        description="Kind of the packets made from messages that are not encoded packets.",
    )
    connect_timeout_s: StrictFloat = Field(
        default=5.0, gt=0, le=600, description="How long one connection attempt may take."
    )

    @field_validator("topic")
    @classmethod
    def _topic_is_a_filter(cls, topic: str) -> str:
        levels = topic.split("/")
        wrong = (
            not topic
            or "\0" in topic
            or any("#" in level and level != "#" for level in levels)
            or "#" in levels[:-1]
            or any("+" in level and level != "+" for level in levels)
        )
        if wrong:
            raise ValueError(
                f"topic {topic!r} is not an MQTT topic filter: + stands for a whole level "
                "and # only for the last one (sensors/+/temperature, sensors/#)"
            )
        return topic
