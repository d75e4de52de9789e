"""The httpx side of the http sink: one pooled client, one POST, one `Reply`.

Imported by `HttpSink.open()` only, so validating a graph or listing plugins never pays for
importing httpx (about 70 ms).
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from pathlib import Path

import httpx

from schnitzel_plugins.http.config import HttpSinkConfig, safe_url
from schnitzel_plugins.http.errors import HttpSinkError
from schnitzel_plugins.http.words import transport_error_text

__all__ = ["HttpClient", "Reply"]

EXCERPT_CHARS = 200
"""How much of a response body an error message quotes."""
BODY_READ_BYTES = 64 * 1024
"""How much of a response body is read at most (enough for any excerpt)."""
SPARE_CONNECTIONS = 3
"""Beyond one connection per call at once: for connections the server is slow to close."""
# Transport errors worth retrying: the backend or the network, not this request.
_RETRIED = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError)


@dataclass(frozen=True)
class Reply:
    """What one attempt got: a status, or no response at all (`status` None)."""

    status: int | None
    detail: str
    """`HTTP 503: <body excerpt>`, or the connection error in words (`connection
    refused`)."""
    retry_after: str | None = None
    """The raw `Retry-After` header, when the response had one."""


class HttpClient:
    """A pooled HTTP/1.1 keep-alive client POSTing JSON bodies to one URL."""

    def __init__(
        self,
        config: HttpSinkConfig,
        token: str | None,
        ca_file: Path | None,
        calls_at_once: int = 1,
    ) -> None:
        self._url = config.url
        self._where = safe_url(config.url)
        self._timeout_s = config.timeout_s
        self._token = token
        headers = dict(config.headers)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(config.timeout_s),
            limits=httpx.Limits(
                max_connections=calls_at_once + SPARE_CONNECTIONS,
                max_keepalive_connections=calls_at_once + SPARE_CONNECTIONS,
                keepalive_expiry=30.0,
            ),
            verify=_tls_verify(config.verify_tls, ca_file),
            http1=True,
            http2=False,
            follow_redirects=False,  # a redirected POST may not be the same request
        )

    def __repr__(self) -> str:
        return f"HttpClient({self._where!r})"

    async def post(self, body: bytes, key: str) -> Reply:
        """POST one JSON body with its Idempotency-Key. Retried transport errors and a missed
        deadline come back as a `Reply` without a status; others (an unsendable request)
        raise HttpSinkError.

        `timeout_s` is one deadline for the whole request: connecting, sending, waiting and
        reading the response body. httpx's own timeouts bound each read, so a body trickling
        in a byte at a time would never trip them; `asyncio.timeout` cuts it off."""
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": key,
            "Accept-Encoding": "identity",  # the body is read raw (_read_at_most)
        }
        request = self._client.build_request("POST", self._url, content=body, headers=headers)
        try:
            async with asyncio.timeout(self._timeout_s):
                # Streamed, and no more than BODY_READ_BYTES read: only the status and an
                # excerpt matter, and a huge answer (a download, a hostile backend) must not
                # be held in memory. An answer not read to its end closes its connection.
                response = await self._client.send(request, stream=True)
                try:
                    head = await _read_at_most(response, BODY_READ_BYTES)
                finally:
                    await response.aclose()
        except TimeoutError:
            return Reply(
                None,
                f"no complete answer within {self._timeout_s:g} s (timeout_s bounds "
                "the whole request: connect, send, wait, read)",
            )
        except _RETRIED as exc:
            return Reply(None, self._redact(transport_error_text(exc, self._timeout_s)))
        except httpx.HTTPError as exc:
            raise HttpSinkError(
                f"cannot send a request to {self._where}: {type(exc).__name__}: "
                f"{self._redact(str(exc))}"
            ) from None  # the chained httpx error could show the request's headers
        status = response.status_code
        detail = f"HTTP {status} {response.reason_phrase}".rstrip()
        if 300 <= status < 400 and (location := response.headers.get("location")):
            detail += f" (to {_redirect_target(response, location)})"
        if not 200 <= status < 300:
            text = head.decode(response.encoding or "utf-8", errors="replace")
            excerpt = " ".join(text[: EXCERPT_CHARS * 2].split())[:EXCERPT_CHARS]
            if excerpt:
                detail += f": {self._redact(excerpt)}"
        return Reply(status, detail, response.headers.get("retry-after"))

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._client.aclose()

    def _redact(self, text: str) -> str:
        # A backend that echoes the request back must not leak the token into an error.
        return text.replace(self._token, "[token]") if self._token else text


def _redirect_target(response: httpx.Response, location: str) -> str:
    """Where a redirect points, as logs show URLs (no credentials, no query string)."""
    try:
        return safe_url(str(response.url.join(location)))
    except (httpx.InvalidURL, ValueError):
        return "an unreadable Location"


def _tls_verify(verify_tls: bool, ca_file: Path | None) -> ssl.SSLContext | bool:
    if not verify_tls:
        return False
    if ca_file is None:
        return True  # httpx's default bundle (certifi), or SSL_CERT_FILE / SSL_CERT_DIR
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise HttpSinkError(
            f"cannot load the CA file {str(ca_file)!r} (ca_file): {exc}; give a readable PEM file"
        ) from exc


async def _read_at_most(response: httpx.Response, limit: int) -> bytes:
    """The first `limit` bytes of the body at most, and no more read off the wire than one
    chunk past them. Raw, not unpacked: httpx unpacks a compressed body a network read at a
    time, each whole (a 32 KB gzip answer became 32 MB at once); the request asks for none,
    and what a backend compresses anyway is quoted as it came."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]
