"""Reading a field out of a packet: the one rule of every node of the pack that names a field
in its config (`threshold`, `deadband`, `rate_limit`, `window`, `fuse`).

- A key (`by`, `key`) is `source_id`, `kind`, `payload.<path>` or `meta.<path>`; None keeps
  one key for every packet. A value is a payload path (`value`, `imu.ax`). A path is dotted
  names of letters, digits, `_` and `-`, each step into a JSON object (a mapping); a list is
  not indexed.
- A packet without the field (or with something other than an object on the way) fails:
  `packet has no payload.value`, an error on that packet, so the node's `on_error` applies.
- A number is an int or a float, finite: a boolean, a string, null, NaN or an infinity fails
  the packet (`payload.value must be a finite number, not nan`): an infinity would be written
  into an alert or an aggregate JSON cannot hold, a NaN compares false to everything. So does
  an int past a float's range (JSON gives Python ints of 4,300 digits): a window's sum of it
  would fail after counting it.
- A key's value is kept as it is when hashable, else keyed by its repr (`[1, 2]`); one too
  deep to print fails the packet.

The expression language of `filter`, `map` and `route` reads fields its own way (its own
syntax and messages: expressions.py). Pure logic: nothing here imports the runtime.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Hashable
from math import isfinite
from operator import attrgetter
from typing import Any

from schnitzel import StreamPacket

__all__ = ["FIELD_PATTERN", "KEY_PATTERN", "key_reader", "number_reader", "value_reader"]

KEY_PATTERN = r"^(source_id|kind|(payload|meta)\.[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)$"
"""What a key option (`by`, `key`) may name."""
FIELD_PATTERN = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"
"""A payload path: `value`, `reading.celsius`."""

_MISSING = object()
_FLOAT_MAX = sys.float_info.max  # a bigger int fails a window's float sum


def value_reader(field: str) -> Callable[[StreamPacket], Any]:
    """How to read whatever is at payload path `field`."""
    return _path_reader("payload", field)


def number_reader(field: str) -> Callable[[StreamPacket], float]:
    """How to read the finite number at payload path `field`."""
    read_value = _path_reader("payload", field)
    name = f"payload.{field}"

    def read(packet: StreamPacket) -> float:
        value = read_value(packet)
        kind = value.__class__
        if (kind is float and isfinite(value)) or (
            kind is int and -_FLOAT_MAX <= value <= _FLOAT_MAX
        ):
            return value
        if (
            isinstance(value, int | float)
            and kind is not bool
            and -_FLOAT_MAX <= value <= _FLOAT_MAX
        ):
            return value  # a subclass: what a plugin's own payload may hold (NaN is not within)
        if isinstance(value, int) and kind is not bool:
            raise ValueError(
                f"{name} must be a finite number, not an integer of {value.bit_length()} bits "
                "(past a float's range)"
            )
        raise ValueError(f"{name} must be a finite number, not {value!r}")

    if "." in field:
        return read

    def read_top(packet: StreamPacket) -> float:
        # the common case, per packet (`window`), without a call; the rest as `read`
        payload = packet.payload
        if payload.__class__ is dict:
            value = payload.get(field, _MISSING)
            kind = value.__class__
            if (kind is float and isfinite(value)) or (
                kind is int and -_FLOAT_MAX <= value <= _FLOAT_MAX
            ):
                return value
        return read(packet)

    return read_top


def key_reader(key: str | None) -> Callable[[StreamPacket], Hashable]:
    """How to read the key `key` of a packet (None: one key, None, for every packet)."""
    if key is None:
        return lambda packet: None
    if key == "source_id":
        return lambda packet: packet.source_id
    if key == "kind":
        return lambda packet: packet.kind
    where, _, path = key.partition(".")
    read_value = _path_reader(where, path)

    def read(packet: StreamPacket) -> Hashable:
        value = read_value(packet)
        try:
            hash(value)
        except TypeError:
            try:
                return repr(value)
            except RecursionError:
                raise ValueError(
                    f"{key} is nested too deep to be a key (its text cannot be printed)"
                ) from None
        return value

    if where != "payload" or "." in path:
        return read

    def read_top(packet: StreamPacket) -> Hashable:
        # the common case, per packet (`window`), without a call; the rest as `read`
        payload = packet.payload
        if payload.__class__ is dict:
            value = payload.get(path, _MISSING)
            if value.__class__ is str or value.__class__ is int:
                return value
        return read(packet)

    return read_top


def _path_reader(where: str, path: str) -> Callable[[StreamPacket], Any]:
    """How to read dotted `path` under the packet's `where` (`payload` or `meta`)."""
    parts = path.split(".")
    name = f"{where}.{path}"
    top = attrgetter(where)
    if len(parts) == 1:  # the common case, per packet: no walk
        part = parts[0]

        def read_field(packet: StreamPacket) -> Any:
            container = top(packet)
            if container.__class__ is dict:
                value = container.get(part, _MISSING)
                if value is not _MISSING:
                    return value
            return _walk(container, parts, name)

        return read_field
    return lambda packet: _walk(top(packet), parts, name)


def _walk(value: Any, parts: list[str], name: str) -> Any:
    for part in parts:
        if not isinstance(value, dict) or part not in value:
            raise ValueError(f"packet has no {name}")
        value = value[part]
    return value
