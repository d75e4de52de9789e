"""`http`: POSTs each packet as JSON with an Idempotency-Key header."""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import urlsplit

from pydantic import Field, StrictBool, StrictFloat, field_validator

from schnitzel.registry.plugin import PluginConfig, Sink

__all__ = ["HttpSink", "HttpSinkConfig"]


class HttpSinkConfig(PluginConfig):
    """Options of the http sink."""

    url: str = Field(
        pattern=r"^[hH][tT][tT][pP][sS]?://",
        description="Where to POST packets: an http:// or https:// URL.",
        json_schema_extra={"format": "uri"},
    )
    timeout_s: StrictFloat = Field(default=10.0, gt=0, le=600, description="Per-request timeout.")
    headers: dict[str, str] = Field(default={}, description="Extra request headers.")
    token_env: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Environment variable holding a bearer token (never logged).",
    )
    verify_tls: StrictBool = Field(default=True, description="Verify the server's TLS certificate.")

    @field_validator("url")
    @classmethod
    def _url_has_a_host(cls, url: str) -> str:
        # urllib instead of pydantic's AnyHttpUrl: that type costs 20 ms of CLI start-up.
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a port out of range
        except ValueError as exc:
            raise ValueError(f"{url!r} is not a valid URL: {exc}") from exc
        if not parts.hostname:
            raise ValueError(f"{url!r} has no host; write it like http://127.0.0.1:8080/ingest")
        return url


class HttpSink(Sink):
    """POSTs each packet as JSON; 2xx = delivered, 5xx/429/connection errors are retried."""

    name: ClassVar[str] = "http"
    Config: ClassVar[type[PluginConfig]] = HttpSinkConfig
    requires_portable: ClassVar[bool] = True
