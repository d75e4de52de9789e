"""The calls a durable inbox makes on its store (runtime/durable_inbox.py), run where the store
lives (schnitzel/durable/store_worker.py: its process, or its thread): a commit with its
parking changes, what an open needs, rows read back and decoded, the blob URIs the stored
rows name (refs: runtime/held_refs.py), a trial of a quarantine requeue. Module-level
functions, so that a store's process finds them by name."""

from __future__ import annotations

import sqlite3
from functools import partial

from schnitzel.contract.codec import decode_packet
from schnitzel.contract.packet import StreamPacket
from schnitzel.contract.refs import packet_refs
from schnitzel.durable.parking import ParkingChanges, parked_bodies_naming, parked_totals
from schnitzel.durable.quarantine import QuarantineRequeue, requeueable
from schnitzel.durable.store import Backlog, Damaged, DurableStore, NewRow, NewRows, StoreError
from schnitzel.errors import PacketDecodeError

__all__ = [
    "REF_KEY",
    "body_refs",
    "commit_on_store",
    "open_on_store",
    "read_decoded",
    "stored_refs",
    "trial_requeue",
]

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
    for body in store.query(partial(parked_bodies_naming, key=REF_KEY)):
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


def commit_on_store(
    store: DurableStore,
    rows: list[NewRow] | NewRows,
    deletes: list[tuple[int, int]],
    cursor: int,
    changes: ParkingChanges,
) -> ParkingChanges:
    """One commit where the store lives, with the parking changes in its transaction: the
    packets to park and the rows to requeue (parked, or of quarantine entries) are read
    first; requeued ones are inserted after `rows` (seqs reserved above all of them).
    Returns `changes` with what the commit did filled in (a store's process sends back its
    own copy)."""
    if not changes:
        store.commit(rows, deletes, cursor)
        return changes
    changes.plan_park(store.packets)
    store.query(changes.plan_requeue)
    store.commit(rows, deletes, cursor, extra=changes.apply, restored=changes.restored_rows)
    return changes


def open_on_store(
    store: DurableStore,
) -> tuple[Backlog, tuple[list[tuple[int, tuple[str, ...]]], list[str]], tuple[int, int]]:
    """What `open` needs from the store, in one call where the store lives (one hand-off, not
    three): its backlog, the blob URIs its packets name (queued, parked), its parked
    totals."""
    backlog = store.open()
    return backlog, stored_refs(store), store.query(parked_totals)


def trial_requeue(
    db: sqlite3.Connection, store: str, ids: tuple[int, ...] | None
) -> tuple[QuarantineRequeue, list[tuple[int, str]]]:
    """A requeue of the entries `ids` (None: every one that matches its checksum) planned
    against the store as it is, where the store lives; and the entries an `all` skipped."""
    skipped: list[tuple[int, str]] = []
    if ids is None:
        wanted, skipped = requeueable(db, store)
    else:
        wanted = tuple(dict.fromkeys(ids))
    trial = QuarantineRequeue(store, wanted)
    trial.plan(db)
    return trial, skipped
