"""`http`: POSTs each packet as JSON with an Idempotency-Key header."""

from __future__ import annotations

from typing import ClassVar

from pydantic import AnyHttpUrl, Field

from schnitzel.registry.plugin import PluginConfig, Sink

__all__ = ["HttpSink", "HttpSinkConfig"]


class HttpSinkConfig(PluginConfig):
    """Options of the http sink."""

    url: AnyHttpUrl = Field(description="Where to POST packets (http or https).")
    timeout_s: float = Field(default=10.0, gt=0, le=600, description="Per-request timeout.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers.")
    token_env: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Environment variable holding a bearer token (never logged).",
    )
    verify_tls: bool = Field(default=True, description="Verify the server's TLS certificate.")


class HttpSink(Sink):
    """POSTs each packet as JSON; 2xx = delivered, 5xx/429/connection errors are retried."""

    name: ClassVar[str] = "http"
    Config: ClassVar[type[PluginConfig]] = HttpSinkConfig
    requires_portable: ClassVar[bool] = True
