"""Options of the http sink (the `config:` of a node with `plugin: http`)."""

from __future__ import annotations

import re
from typing import Self
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, StrictBool, StrictFloat, StrictInt, field_validator, model_validator

from schnitzel import RetryOptions

__all__ = ["HttpSinkConfig", "safe_url"]

# RFC 9110 token characters: what a header name may be made of.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Headers the sink sets on every request itself.
_SET_BY_THE_SINK = {"content-type", "content-length", "idempotency-key"}


class HttpSinkConfig(RetryOptions):
    """Options of the http sink; the retry and breaker options are `RetryOptions`'."""

    url: str = Field(
        pattern=r"^[hH][tT][tT][pP][sS]?://",
        description="Where to POST packets: an http:// or https:// URL.",
        json_schema_extra={"format": "uri"},
    )
    timeout_s: StrictFloat = Field(
        default=10.0,
        gt=0,
        le=600,
        description="One deadline for the whole request: connect, send, wait, read the body.",
    )
    headers: dict[str, str] = Field(
        default={},
        repr=False,  # values may be secrets
        description="Extra request headers (not Content-Type or Idempotency-Key, which the "
        "sink sets; not Authorization together with token_env).",
    )
    token_env: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Environment variable holding a bearer token, read at start (never logged).",
    )
    verify_tls: StrictBool = Field(default=True, description="Verify the server's TLS certificate.")
    ca_file: str | None = Field(
        default=None,
        min_length=1,
        description="PEM file of the CA certificates to trust instead of the default bundle "
        "(a private CA); relative to the graph file.",
    )
    batch_max: StrictInt = Field(
        default=1,
        ge=1,
        le=10000,
        description="Packets per request: 1 posts one JSON object per request; more posts "
        "JSON arrays of up to this many packets.",
    )

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

    @field_validator("headers")
    @classmethod
    def _headers_are_sendable(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"header name {name!r} is not a valid HTTP header name")
            if name.lower() in _SET_BY_THE_SINK:
                raise ValueError(f"header {name!r} is set by the sink itself; remove it")
            if not value.isascii() or not value.isprintable():
                # The value is not quoted back: it may be a secret.
                raise ValueError(
                    f"the value of header {name!r} must be printable ASCII (no line breaks)"
                )
        return headers

    @model_validator(mode="after")
    def _options_agree(self) -> Self:
        if self.ca_file is not None and not self.verify_tls:
            raise ValueError("ca_file is set but verify_tls is false; drop one of the two")
        if self.token_env is not None and any(n.lower() == "authorization" for n in self.headers):
            raise ValueError(
                "headers has an Authorization header and token_env is set; keep one of the two"
            )
        return self


def safe_url(url: str) -> str:
    """The URL as logs and errors show it: no user:password, no query string (either may
    carry a secret)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "…" if parts.query else "", ""))
