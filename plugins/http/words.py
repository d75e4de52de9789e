"""What went wrong with a request, in words an operator reads: `connection refused`, not
`ConnectError: All connection attempts failed`.

Pure functions of an exception or a status, so they are tested without a server.
"""

from __future__ import annotations

import errno
import socket

__all__ = ["transport_error_text"]

_ERRNO_WORDS = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.ECONNABORTED: "connection aborted",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ETIMEDOUT: "connection timed out",
    errno.EPIPE: "connection closed while sending",
}
# httpx's own names for what it could not do, when no OS error says more.
_TYPE_WORDS = {
    "ConnectTimeout": "no connection within {timeout}",
    "ReadTimeout": "no answer within {timeout}",
    "WriteTimeout": "could not send within {timeout}",
    "PoolTimeout": "no free connection within {timeout}",
    "RemoteProtocolError": "the backend broke the HTTP exchange",
}


def transport_error_text(exc: BaseException, timeout_s: float | None = None) -> str:
    """`connection refused` for a request that got no response: the most specific cause
    found in the error's chain (an OS error's errno, a name that does not resolve), else
    what the error's type means (`no answer within 2 s (timeout_s)`), else its name and
    message (`ProxyError: ...`)."""
    name = type(exc).__name__
    timeout = f"{timeout_s:g} s (timeout_s)" if timeout_s is not None else "timeout_s"
    words = _cause_in_words(exc) or _TYPE_WORDS.get(name, "").format(timeout=timeout)
    return words or f"{name}: {exc}".rstrip(": ")


def _cause_in_words(exc: BaseException) -> str:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, socket.gaierror):
            return f"cannot resolve the host name ({current.strerror or current})"
        if isinstance(current, OSError) and current.errno in _ERRNO_WORDS:
            return _ERRNO_WORDS[current.errno]
        current = current.__cause__ or current.__context__
    return ""
