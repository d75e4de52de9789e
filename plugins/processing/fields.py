"""Reading a key or a number out of a packet, as `window` and `fuse` name them in their config.

A key is `source_id`, `kind`, `payload.<path>` or `meta.<path>` (dotted paths into nested
objects); a value is a payload path (`value`, `imu.ax`). A packet without the field fails
(an error on that packet: the node's `on_error` applies).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from math import isfinite
from typing import Any

from schnitzel import StreamPacket

__all__ = ["KEY_PATTERN", "VALUE_PATTERN", "key_reader", "number_reader"]

KEY_PATTERN = r"^(source_id|kind|(payload|meta)\.[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)$"
VALUE_PATTERN = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"


def _walk(value: Any, parts: list[str], name: str) -> Any:
    for part in parts:
        if not isinstance(value, dict) or part not in value:
            raise ValueError(f"packet has no {name}")
        value = value[part]
    return value


def key_reader(key: str) -> Callable[[StreamPacket], Hashable]:
    """How to read the key `key` from a packet; unhashable values are keyed by their repr."""
    if key == "source_id":
        return lambda packet: packet.source_id
    if key == "kind":
        return lambda packet: packet.kind
    where, _, path = key.partition(".")
    parts = path.split(".")
    if where == "payload" and len(parts) == 1:  # the common case, per packet: no walk
        part = parts[0]

        def read_field(packet: StreamPacket) -> Hashable:
            try:
                value = packet.payload[part]
            except (KeyError, TypeError, IndexError):
                raise ValueError(f"packet has no {key}") from None
            if value.__class__ is str or value.__class__ is int:
                return value
            try:
                hash(value)
            except TypeError:
                return repr(value)
            return value

        return read_field

    def read(packet: StreamPacket) -> Hashable:
        value = _walk(packet.payload if where == "payload" else packet.meta, parts, key)
        try:
            hash(value)
        except TypeError:
            return repr(value)
        return value

    return read


def number_reader(field: str) -> Callable[[StreamPacket], float]:
    """How to read the number at payload path `field`; anything but an int or a finite
    float fails the packet."""
    parts = field.split(".")
    name = f"payload.{field}"

    def read(packet: StreamPacket) -> float:
        if len(parts) == 1:
            try:
                value = packet.payload[field]
            except (KeyError, TypeError, IndexError):
                raise ValueError(f"packet has no {name}") from None
        else:
            value = _walk(packet.payload, parts, name)
        if value.__class__ is int or (value.__class__ is float and isfinite(value)):
            return value
        if isinstance(value, bool) or not isinstance(value, int | float) or not isfinite(value):
            raise ValueError(f"{name} must be a finite number, not {value!r}")
        return float(value)

    return read
