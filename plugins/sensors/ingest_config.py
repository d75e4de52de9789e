"""Options of the `http_ingest` source."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, StrictFloat, StrictInt, StrictStr, field_validator, model_validator

from schnitzel import PacketKind, PluginConfig

__all__ = ["HttpIngestConfig"]

_PATH = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@/]*")
"""A path aiohttp's router matches as written: RFC 3986's path characters, no escapes."""


class HttpIngestConfig(PluginConfig):
    """Options of the http_ingest source."""

    host: StrictStr = Field(
        default="127.0.0.1",
        description="Address to listen on; 0.0.0.0 for every interface (then set token_env).",
    )
    port: StrictInt = Field(default=8080, ge=1, le=65535, description="TCP port to listen on.")
    path: StrictStr = Field(default="/ingest", description="The URL path devices POST to.")
    kind: PacketKind = Field(default="event", description="Kind of the packets made.")
    token_env: StrictStr | None = Field(
        default=None,
        min_length=1,
        description="Name of the environment variable holding the bearer token clients must "
        "send (`Authorization: Bearer <token>`); none: no token asked. The graph file never "
        "holds the secret itself.",
    )
    tls_cert: StrictStr | None = Field(
        default=None, min_length=1, description="PEM certificate (chain) file: serve HTTPS."
    )
    tls_key: StrictStr | None = Field(
        default=None, min_length=1, description="PEM private key file of `tls_cert`."
    )
    max_body_bytes: StrictInt = Field(
        default=1_048_576, ge=64, description="Larger bodies are refused with 413."
    )
    max_records: StrictInt = Field(
        default=1000, ge=1, description="Most records (objects) in one body; more: 413."
    )
    queue_max: StrictInt = Field(
        default=1024,
        ge=1,
        description="Records received and not yet taken by the graph; a body that does not "
        "fit is refused with `busy_status` and Retry-After.",
    )
    busy_status: Literal[429, 503] = Field(
        default=503, description="The answer under backpressure: 503 or 429."
    )
    retry_after_s: StrictInt = Field(
        default=1, ge=0, description="The Retry-After (seconds) sent with 429/503."
    )
    accept_timeout_s: StrictFloat = Field(
        default=30.0,
        gt=0,
        description="How long a request waits for its records to become safe before it is "
        "answered 503 (the records may still arrive: send again with the same Idempotency-Key).",
    )

    request_timeout_s: StrictFloat = Field(
        default=20.0,
        gt=0,
        le=3600,
        description="How long a client has to send a request's headers (counted from when "
        "it connects, or from its previous answer on a kept-alive connection; under TLS it "
        "has this long for its handshake first), and then again "
        "its body. A slower client is cut off: one that never finishes its headers is "
        "disconnected without an answer, one that never finishes its body is answered 408. "
        "An idle kept-alive connection is closed after this long too, so a slowloris client "
        "holds a connection (a file descriptor) no longer than this.",
    )

    max_connections: StrictInt = Field(
        default=256,
        ge=1,
        le=65536,
        description="Most client connections open at once (each is a file descriptor). One "
        "more is answered 503 with Retry-After and closed at once; a connection that ends "
        "frees its place.",
    )

    @field_validator("path")
    @classmethod
    def _literal_path(cls, path: str) -> str:
        # aiohttp's router reads `{name}` as a variable and matches a request's decoded
        # path, so a percent-escape written here never matched: no POST reached such a path
        if not _PATH.fullmatch(path):
            raise ValueError(
                f"{path!r} is not a literal URL path: start it with / and use letters, digits "
                "and - . _ ~ ! $ & ' ( ) * + , ; = : @ / only (no { } %, no query or spaces)"
            )
        return path

    @model_validator(mode="after")
    def _cert_and_key(self) -> HttpIngestConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: set both for HTTPS, or neither")
        return self
