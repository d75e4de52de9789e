"""Reading JSON that came from outside: a device's POST, a broker's message, a line of a file.

`json.loads` alone lets four things through that fail later, far from their cause: a value
nested deeper than Python can recurse raises RecursionError (not ValueError, so a handler
that catches ValueError turns it into a crash or an HTTP 500); `NaN`, `Infinity` and
`-Infinity` are read although JSON (RFC 8259) has no such values; a number out of a float's
range (`1e999`) becomes an infinity; and an escaped lone surrogate (`"\\ud800"`) becomes a
string no UTF-8 can hold. A durable inbox or a network sink refuses a packet holding any of
the last three, after its sender was told it was accepted. `read_json` refuses nesting too
deep always, and the rest with `strict=True`, each with a ValueError that says what is wrong.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

__all__ = ["read_json"]

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
"""Where JSON text may spell a surrogate; only then are its escapes looked at."""
_ESCAPE = re.compile(
    rb"\\(?:u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
    rb"|(u[dD][89a-fA-F][0-9a-fA-F]{2})|.)",
    re.DOTALL,
)
"""One escape, from its backslash: a surrogate pair (what encoders that escape everything
past ASCII write for a character past U+FFFF), a lone surrogate (group 1), or another."""


def _has_lone_surrogate_escape(raw: bytes | bytearray) -> bool:
    return _SURROGATE_ESCAPE.search(raw) is not None and any(
        match.group(1) for match in _ESCAPE.finditer(raw)
    )


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value: send null or a finite number")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"the number {text} is out of a float's range: send a finite number")
    return value


_STRICT = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite_float)
"""Made once: `json.loads` with hooks makes a decoder on every call (most of its cost on a
small message)."""


def _as_text(data: str | bytes | bytearray) -> str:
    """`data` as `json.loads` reads it (bytes in the encoding their first bytes show)."""
    if isinstance(data, str):
        if data.startswith("\ufeff"):
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", data, 0)
        return data
    if not isinstance(data, bytes | bytearray):
        raise TypeError(f"JSON must be str, bytes or bytearray, not {type(data).__name__}")
    return data.decode(json.detect_encoding(data), "surrogatepass")


def read_json(data: str | bytes | bytearray, *, strict: bool = True) -> Any:
    """The value JSON text `data` holds. Raises ValueError naming what is wrong: not UTF-8,
    not JSON, nested too deep, an integer over Python's 4300 digits, and (with `strict`, the
    default) what no durable inbox or JSON sink could write: NaN, Infinity, a number out of
    a float's range, a lone surrogate."""
    try:
        if not strict:
            return json.loads(data)
        value = _STRICT.decode(_as_text(data))
    except RecursionError:
        raise ValueError(
            "the value is nested too deep for Python to read (RecursionError): nest it less deeply"
        ) from None
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if _has_lone_surrogate_escape(raw):
        try:
            json.dumps(value, ensure_ascii=False).encode()
        except (UnicodeEncodeError, RecursionError):
            raise ValueError(
                "a string holds a lone surrogate (an unpaired \\ud800-\\udfff escape), which "
                "is not text: send valid Unicode"
            ) from None
    return value
