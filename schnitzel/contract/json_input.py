"""Reading JSON that came from outside: a device's POST, a broker's message, a line of a file.

`json.loads` alone lets three things through that fail later, far from their cause: a value
nested deeper than Python can recurse raises RecursionError (not ValueError, so a handler
that catches ValueError turns it into a crash or an HTTP 500); `NaN`, `Infinity` and
`-Infinity` are read although JSON (RFC 8259) has no such values; and a number out of a
float's range (`1e999`) becomes an infinity. Packets holding those are refused by the first
durable inbox or network sink they reach, after the sender was told they were accepted.
`read_json` refuses each of them up front with a ValueError that says what is wrong.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["read_json"]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value: send null or a finite number")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"the number {text} is out of a float's range: send a finite number")
    return value


def read_json(data: str | bytes | bytearray, *, finite: bool = True) -> Any:
    """The value JSON text `data` holds. Raises ValueError naming what is wrong: not UTF-8,
    not JSON, nested too deep, an integer over Python's 4300 digits, and (unless
    `finite=False`) NaN, Infinity or a number out of a float's range."""
    try:
        if finite:
            return json.loads(data, parse_constant=_no_constant, parse_float=_finite_float)
        return json.loads(data)
    except RecursionError:
        raise ValueError(
            "the value is nested too deep for Python to read (RecursionError): nest it less deeply"
        ) from None
