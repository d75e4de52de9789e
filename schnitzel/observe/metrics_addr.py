"""`--metrics-addr HOST:PORT`: its parsing and its error, without importing prometheus-client
(the CLI catches the error on every run; the client is imported only when metrics are served)."""

from __future__ import annotations

from schnitzel.errors import SchnitzelError

__all__ = ["MetricsAddrError", "parse_addr"]


class MetricsAddrError(SchnitzelError):
    """`--metrics-addr` is not HOST:PORT, or nothing can listen there."""


def parse_addr(text: str) -> tuple[str, int]:
    """`HOST:PORT` (`[::1]:9464` for IPv6; port 0: any free one) as (host, port)."""
    host, sep, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise MetricsAddrError(
            f"--metrics-addr {text!r} is not HOST:PORT (for example 127.0.0.1:9464)"
        )
    return host, int(port)
