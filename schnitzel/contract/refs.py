"""Which blobs a packet points at: the URIs that blob retention must keep while it is queued.

A packet holds the blob its `payload_ref` names and, when it has a `payload_ref`, every ref
object inside its payload: a JSON object with a string `uri` and a `sha256` (the `events`
node's snapshot carries a crop and a full frame). A packet without a `payload_ref` holds
nothing, so the check costs one attribute read for the packets that carry no blob.
"""

from __future__ import annotations

from typing import Any

from schnitzel.contract.packet import StreamPacket

__all__ = ["MAX_DEPTH", "packet_refs"]

MAX_DEPTH = 6
"""How deep in a payload ref objects are looked for."""


def packet_refs(packet: StreamPacket) -> tuple[str, ...]:
    """The blob URIs `packet` points at, each once, its `payload_ref`'s first."""
    ref = packet.payload_ref
    if ref is None:
        return ()
    found = [ref.uri]
    _find(packet.payload, found, 0)
    return tuple(dict.fromkeys(found))


def _find(value: Any, found: list[str], depth: int) -> None:
    if depth > MAX_DEPTH:
        return
    if isinstance(value, dict):
        uri = value.get("uri")
        if isinstance(uri, str) and "sha256" in value:
            found.append(uri)
        for item in value.values():
            if isinstance(item, dict | list | tuple):
                _find(item, found, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            if isinstance(item, dict | list | tuple):
                _find(item, found, depth + 1)
