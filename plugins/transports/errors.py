"""Errors of the transports pack, part of schnitzel's one hierarchy.

SchnitzelError
 ├── NatsError ............ a nats node cannot open or cannot deliver
 │    ├── NatsRejected .... this packet cannot be published (poison): too large for the
 │    │                     server, or no subject in its subject_field
 │    └── NatsGaveUp ...... retries ran out (only when the inbox is not durable)
 └── MqttError ............ an mqtt node cannot open or cannot deliver
      ├── MqttRejected .... this packet cannot be published (poison): the broker refused it
      │                     while it takes others, or no topic in its topic_field
      └── MqttGaveUp ...... retries ran out (only when the inbox is not durable)
"""

from __future__ import annotations

from schnitzel import SchnitzelError

__all__ = ["MqttError", "MqttGaveUp", "MqttRejected", "NatsError", "NatsGaveUp", "NatsRejected"]


class NatsError(SchnitzelError):
    """A nats node cannot open or deliver."""


class NatsRejected(NatsError):
    """A poison pill: this packet cannot be published while others can (larger than the
    server's max_payload or the stream's max_msg_size, or no subject in its subject_field);
    the node's `on_error` policy decides what happens next."""


class NatsGaveUp(NatsError):
    """Every attempt failed with a retried error and `max_retries` ran out."""

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


class MqttError(SchnitzelError):
    """An mqtt node cannot open or deliver."""


class MqttRejected(MqttError):
    """A poison pill: the broker refused this packet (PUBACK with a failure reason such as
    packet too large or payload format invalid) while it takes others, or its topic_field
    holds no topic; the node's `on_error` policy decides what happens next."""


class MqttGaveUp(MqttError):
    """Every attempt failed with a retried error and `max_retries` ran out."""

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts
