"""Field selectors of the processing policies: `source_id`, `kind`, `payload.a.b`, `meta.a`.

Pure logic: nothing here imports the runtime.
"""

from __future__ import annotations

from collections.abc import Callable
from math import isfinite
from typing import Any

from schnitzel import StreamPacket

__all__ = ["KEY_PATTERN", "NUMBER_PATTERN", "key_reader", "number_reader"]

KEY_PATTERN = r"^(source_id|kind|(payload|meta)\.[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)$"
"""What a `by` option may name: what keeps one state per key."""
NUMBER_PATTERN = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"
"""A payload field holding a number: `value`, `reading.celsius`."""


def key_reader(selector: str | None) -> Callable[[StreamPacket], Any]:
    """How to read the key of a packet: None keeps one state for every packet. A packet
    without the field is an error (the node's on_error applies); unhashable values are keyed
    by their repr."""
    if selector is None:
        return lambda packet: None
    if selector == "source_id":
        return lambda packet: packet.source_id
    if selector == "kind":
        return lambda packet: packet.kind
    where, _, path = selector.partition(".")
    parts = path.split(".")

    def read(packet: StreamPacket) -> Any:
        value = _walk(packet.payload if where == "payload" else packet.meta, parts, selector)
        try:
            hash(value)
        except TypeError:
            return repr(value)
        return value

    return read


def number_reader(field: str) -> Callable[[StreamPacket], float]:
    """How to read the number a policy looks at, from `payload.<field>`; a packet without it,
    or with something other than a finite number there, is an error on that packet (an
    infinity would be written into a threshold's alert, which JSON cannot hold; a NaN
    compares false to everything)."""
    parts = field.split(".")

    def read(packet: StreamPacket) -> float:
        value = _walk(packet.payload, parts, f"payload.{field}")
        if isinstance(value, bool) or not isinstance(value, int | float) or not isfinite(value):
            raise ValueError(f"payload.{field} must be a finite number, not {value!r}")
        return value

    return read


def _walk(value: Any, parts: list[str], name: str) -> Any:
    for part in parts:
        if not isinstance(value, dict) or part not in value:
            raise ValueError(f"packet has no {name}")
        value = value[part]
    return value
