"""What went wrong with a request, in words: the errors httpx raises for a closed port, a
name that does not resolve and a timeout read as `connection refused`, not `All connection
attempts failed`."""

from __future__ import annotations

import asyncio
import socket

import httpx

from schnitzel_plugins.http.words import transport_error_text
from tests.http.test_http_trouble import closed_port


def raised_by_a_post_to(url: str) -> BaseException:
    async def post() -> BaseException:
        async with httpx.AsyncClient(timeout=5) as client:
            try:
                await client.post(url, content=b"{}")
            except httpx.HTTPError as exc:
                return exc
        raise AssertionError(f"{url} answered")

    return asyncio.run(post())


def test_a_closed_port_reads_as_connection_refused() -> None:
    error = raised_by_a_post_to(f"http://127.0.0.1:{closed_port()}/ingest")
    assert transport_error_text(error) == "connection refused"


def test_a_name_that_does_not_resolve_says_so() -> None:
    try:
        raise httpx.ConnectError("[Errno -2] Name or service not known") from socket.gaierror(
            -2, "Name or service not known"
        )
    except httpx.ConnectError as exc:
        text = transport_error_text(exc)
    assert text == "cannot resolve the host name (Name or service not known)"


def test_errors_without_an_os_cause_use_their_own_words() -> None:
    assert transport_error_text(httpx.ReadTimeout("")) == "no answer within timeout_s"
    assert transport_error_text(httpx.ConnectTimeout(""), 2.0) == (
        "no connection within 2 s (timeout_s)"
    )
    odd = httpx.ProxyError("proxy said no")
    assert transport_error_text(odd) == "ProxyError: proxy said no"
