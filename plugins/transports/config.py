"""Options of the transports pack's nodes: what every sink shares, and the `nats` nodes'."""

from __future__ import annotations

import re
from typing import Self
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, StrictFloat, StrictInt, field_validator, model_validator

from schnitzel import PluginConfig, RetryOptions

__all__ = [
    "FIELD_ROOTS",
    "AckedSinkConfig",
    "NatsSinkConfig",
    "NatsSourceConfig",
    "safe_nats_url",
    "valid_subject",
]

_SCHEMES = ("nats", "tls", "ws", "wss")
# A NATS subject to publish on: dot-separated tokens, no wildcards, no whitespace.
_SUBJECT = re.compile(r"[^\s.*>]+(\.[^\s.*>]+)*")
# A JetStream stream name: no whitespace, dots, wildcards or path separators.
_STREAM = re.compile(r"[^\s.*>/\\]+")
FIELD_ROOTS = ("kind", "source_id", "meta", "payload")
"""Where `subject_field` may point: a top-level packet field, or a key path under `meta` or
`payload` (`meta.route`, `payload.site.line`)."""


def valid_subject(subject: str) -> bool:
    """True for a subject one may publish on (no wildcards, no whitespace, no empty token)."""
    return _SUBJECT.fullmatch(subject) is not None


class AckedSinkConfig(RetryOptions):
    """Options every transport sink shares: how long an ack may take, how many publishes
    await theirs at once; how failed rounds are retried (backoff, circuit breaker) are the
    SDK's `RetryOptions` (a breaker failure is a failed round of publishes)."""

    ack_timeout_s: StrictFloat = Field(
        default=5.0, gt=0, le=600, description="How long one publish waits for its ack."
    )
    max_in_flight: StrictInt = Field(
        default=256,
        ge=1,
        le=65536,
        description="Publishes awaiting their ack at once; a micro-batch larger than this "
        "goes in slices.",
    )


class NatsSinkConfig(AckedSinkConfig):
    """Options of the nats sink."""

    url: str = Field(
        description="The NATS server: nats://host:4222 (tls://, ws://, wss:// too); several "
        "servers of one cluster separated by commas.",
    )
    subject: str | None = Field(
        default=None,
        description="The subject every packet is published on; a JetStream stream must "
        "capture it. Give this or subject_field.",
    )
    subject_field: str | None = Field(
        default=None,
        pattern=r"^(kind|source_id|meta(\.[^.]+)+|payload(\.[^.]+)+)$",
        description="Publish each packet on the subject its field holds: kind, source_id, "
        "meta.KEY[.KEY...] or payload.KEY[.KEY...]. A packet without it is refused (on_error).",
    )
    stream: str | None = Field(
        default=None,
        description="The stream the subject must land in; the server refuses a publish that "
        "another stream (or none) captures, and the sink retries until the streams are fixed.",
    )

    @field_validator("url")
    @classmethod
    def _urls_have_a_host(cls, url: str) -> str:
        for one in url.split(","):
            try:
                parts = urlsplit(one.strip())
                parts.port  # noqa: B018 - raises ValueError for a port out of range
            except ValueError as exc:
                raise ValueError(f"{one!r} is not a valid URL: {exc}") from exc
            if parts.scheme.lower() not in _SCHEMES or not parts.hostname:
                raise ValueError(
                    f"{one!r} is not a NATS server URL; write it like nats://127.0.0.1:4222"
                )
        return url

    @field_validator("subject")
    @classmethod
    def _subject_is_publishable(cls, subject: str | None) -> str | None:
        if subject is not None and not valid_subject(subject):
            raise ValueError(
                f"subject {subject!r} cannot be published on: use dot-separated tokens "
                "without spaces or the wildcards * and >"
            )
        return subject

    @field_validator("stream")
    @classmethod
    def _stream_is_a_name(cls, stream: str | None) -> str | None:
        if stream is not None and not _STREAM.fullmatch(stream):
            raise ValueError(
                f"stream {stream!r} is not a JetStream stream name (no spaces, dots, * > / \\)"
            )
        return stream

    @model_validator(mode="after")
    def _options_agree(self) -> Self:
        if (self.subject is None) == (self.subject_field is None):
            raise ValueError(
                "give exactly one of subject (one subject for every packet) and "
                "subject_field (the packet field holding each packet's subject)"
            )
        return self

    def servers(self) -> list[str]:
        """The server URLs, for the client."""
        return [one.strip() for one in self.url.split(",")]


def safe_nats_url(url: str) -> str:
    """The URL(s) as logs and errors show them: no user:password or token."""
    shown = []
    for one in url.split(","):
        parts = urlsplit(one.strip())
        netloc = parts.netloc.rpartition("@")[2]
        shown.append(urlunsplit((parts.scheme, netloc, parts.path, "", "")))
    return ",".join(shown)


class NatsSourceConfig(PluginConfig):
    """Options of the nats source."""

    url: str = Field(description="The NATS server, as for the nats sink.")
    stream: str = Field(description="The JetStream stream to consume (it must exist).")
    consumer: str = Field(
        pattern=r"^[A-Za-z0-9_-]+$",
        description="The durable pull consumer's name: runtimes with the same consumer share "
        "the stream's messages; created on first use when missing.",
    )
    subject: str | None = Field(
        default=None,
        description="Consume only this subject of the stream (wildcards allowed); null: all.",
    )
    batch: StrictInt = Field(
        default=16,
        ge=1,
        le=4096,
        description="Messages one fetch asks for; fetched only when the node was given room "
        "for the last one, so at most this many are held before downstream takes them.",
    )
    ack_wait_s: StrictFloat = Field(
        default=30.0,
        gt=0,
        le=86400,
        description="The consumer's ack_wait when it is created: how long after a delivery "
        "an unacknowledged message goes to another worker; a message held longer is kept "
        "with in_progress.",
    )
    max_deliver: StrictInt = Field(
        default=5,
        ge=2,
        le=1000,
        description="The consumer's max_deliver when it is created: a message delivered this "
        "many times goes to the node's on_error instead of downstream.",
    )
    fetch_timeout_s: StrictFloat = Field(
        default=1.0, gt=0, le=60, description="How long one fetch waits for messages."
    )
    kind: str = Field(
        default="event",
        pattern=r"^[a-z0-9_-]+$",
        description="Kind of the packets made from messages that are not encoded packets.",
    )

    @field_validator("url")
    @classmethod
    def _urls_have_a_host(cls, url: str) -> str:
        return NatsSinkConfig._urls_have_a_host(url)

    @field_validator("stream")
    @classmethod
    def _stream_is_a_name(cls, stream: str) -> str:
        NatsSinkConfig._stream_is_a_name(stream)  # raises for a bad name
        return stream

    def servers(self) -> list[str]:
        """The server URLs, for the client."""
        return [one.strip() for one in self.url.split(",")]
