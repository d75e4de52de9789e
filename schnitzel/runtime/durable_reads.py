"""What a durable inbox reads back from its store: rows decoded on the store's thread, and the
blob URIs the stored rows name (runtime/durable_inbox.py; refs: runtime/held_refs.py)."""

from __future__ import annotations

from schnitzel.contract.codec import decode_packet
from schnitzel.contract.packet import StreamPacket
from schnitzel.contract.refs import packet_refs
from schnitzel.durable.parking import parked_bodies_naming
from schnitzel.durable.store import Damaged, DurableStore, StoreError
from schnitzel.errors import PacketDecodeError

__all__ = ["REF_KEY", "body_refs", "read_decoded", "stored_refs"]

REF_KEY = b'"payload_ref":'
"""What an encoded packet with a `payload_ref` holds (codec.py): rows that may name blobs."""


def stored_refs(store: DurableStore) -> tuple[list[tuple[int, tuple[str, ...]]], list[str]]:
    """The blob URIs the store's packets name: (seq, URIs) per queued packet that names some,
    and the URIs of its parked packets. Only packets holding a `payload_ref` are decoded; a
    packet that does not decode names nothing (it is quarantined when read)."""
    queued: list[tuple[int, tuple[str, ...]]] = []
    for seq, body in store.bodies_naming(REF_KEY):
        uris = body_refs(body)
        if uris:
            queued.append((seq, uris))
    parked: list[str] = []
    for body in store.query(lambda db: parked_bodies_naming(db, REF_KEY)):
        parked.extend(body_refs(body))
    return queued, parked


def body_refs(body: bytes) -> tuple[str, ...]:
    """The blob URIs an encoded packet names (none when it does not decode)."""
    try:
        return packet_refs(decode_packet(bytes(body)))
    except PacketDecodeError:
        return ()


def read_decoded(
    store: DurableStore, limit: int
) -> list[tuple[int, float, int, StreamPacket | PacketDecodeError]]:
    """Rows read back from disk, decoded on the store's thread. A damaged row (changed on
    disk, or not decoding) is moved to the store's quarantine table and returned with the
    error in place of its packet: the same error object for every packet of one row."""
    good, damaged = store.read(limit)
    decoded: list[tuple[int, float, int, StreamPacket | PacketDecodeError]] = []
    undecodable: list[Damaged] = []
    for seq, at, body in good:
        try:
            packet: StreamPacket | PacketDecodeError = decode_packet(body)
        except PacketDecodeError as exc:
            why = f"row {seq} of {store.path}: {exc}"
            undecodable.append((seq, at, len(body), why))
            packet = PacketDecodeError(why)
        decoded.append((seq, at, len(body), packet))
    if undecodable:
        try:
            store.quarantine([(seq, why) for seq, _at, _size, why in undecodable])
        except StoreError as exc:  # still never delivered; the next run moves them
            decoded = [
                (seq, at, size, PacketDecodeError(f"{packet} (left in place: {exc})"))
                if isinstance(packet, Exception)
                else (seq, at, size, packet)
                for seq, at, size, packet in decoded
            ]
    if damaged:  # the packets of one damaged row share one error: it is shown once
        errors: dict[str, PacketDecodeError] = {}
        for seq, at, size, why in damaged:
            error = errors.get(why)
            if error is None:
                error = errors[why] = PacketDecodeError(why)
            decoded.append((seq, at, size, error))
        decoded.sort(key=lambda row: row[0])
    return decoded
