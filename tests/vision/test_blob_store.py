"""The blob store against a model of what it should hold: content-addressed files, atomic
writes, retention by bytes and age, refs that cannot point outside it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from schnitzel.contract.packet import PayloadRef
from schnitzel_plugins.vision.blobs import BlobStore, BlobStoreError


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_blob_round_trips_with_a_ref_that_describes_it(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    data = b"\xff\xd8jpeg bytes"
    ref = store.put(data, "image/jpeg")
    assert (ref.content_type, ref.size, ref.sha256) == (
        "image/jpeg",
        len(data),
        hashlib.sha256(data).hexdigest(),
    )
    assert ref.uri.startswith("file://") and ref.uri.endswith(".jpg")
    assert store.read(ref) == data
    assert store.put(data, "image/jpeg") == ref and len(store) == 1  # the same bytes: one file
    assert list((tmp_path / "blobs" / ".tmp").iterdir()) == []  # nothing left half written


def test_retention_keeps_the_newest_within_max_bytes(tmp_path: Path) -> None:
    clock = Clock()
    store = BlobStore(tmp_path, max_bytes=250, clock=clock)
    refs = []
    for n in range(10):
        clock.now += 1
        refs.append(store.put(bytes([n]) * 100, "application/octet-stream"))
        assert store.total_bytes <= 250
    kept = [r for r in refs if Path(r.uri[7:]).exists()]
    assert kept == refs[-2:]  # model: the two newest fit in 250 bytes
    assert store.removed == 8
    assert store.total_bytes == sum(r.size for r in kept)
    with pytest.raises(BlobStoreError, match="is gone"):
        store.read(refs[0])


def test_retention_removes_blobs_older_than_max_age(tmp_path: Path) -> None:
    clock = Clock()
    store = BlobStore(tmp_path, max_age_s=60, clock=clock)
    old = store.put(b"old", "image/png")
    clock.now += 61
    new = store.put(b"new", "image/png")
    assert not Path(old.uri[7:]).exists() and Path(new.uri[7:]).exists()
    clock.now += 61
    assert store.collect() == 1 and len(store) == 0


def test_a_store_reopened_knows_what_it_holds_and_drops_torn_writes(tmp_path: Path) -> None:
    store = BlobStore(tmp_path, max_bytes=1000)
    ref = store.put(b"x" * 400, "image/jpeg")
    (tmp_path / ".tmp" / "cut-short").write_bytes(b"half")
    again = BlobStore(tmp_path, max_bytes=1000)
    assert again.total_bytes == 400 and again.read(ref) == b"x" * 400
    assert list((tmp_path / ".tmp").iterdir()) == []


def test_refs_outside_the_store_are_refused(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"s")
    digest = hashlib.sha256(b"s").hexdigest()
    for uri in (
        secret.as_uri(),
        (tmp_path / "blobs" / "aa" / ".." / ".." / "secret.jpg").as_uri(),
        "http://example.invalid/x.jpg",
    ):
        with pytest.raises(BlobStoreError):
            store.read(PayloadRef(uri, "image/jpeg", 1, digest))
    with pytest.raises(BlobStoreError, match="content type"):
        store.put(b"x", "text/html")


def test_a_damaged_blob_is_reported(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    ref = store.put(b"abc", "image/jpeg")
    path = Path(ref.uri[7:])
    os.chmod(path, 0o644)
    path.write_bytes(b"abd")
    with pytest.raises(BlobStoreError, match="damaged"):
        store.read(ref)


def test_frames_through_blob_store_reach_a_jsonl_file_as_refs(tmp_path: Path) -> None:
    import asyncio
    import json

    from schnitzel.runtime import Runtime
    from schnitzel.validate import load_graph
    from tests.vision.scenes import write_scene

    scene = write_scene(tmp_path / "v.mp4", frames=8)
    graph = tmp_path / "g.yaml"
    graph.write_text(
        "version: 2\nnodes:\n"
        "  - {id: cam, kind: source, plugin: video_file, config: {path: v.mp4}}\n"
        "  - {id: snap, kind: compute, plugin: blob_store, config: {dir: blobs, "
        "max_bytes: 200000}, limits: {concurrency: [1, 1]}}\n"  # keeps 1 write: bytes exact
        "  - id: out\n    kind: sink\n    plugin: jsonl\n    config: {path: frames.jsonl}\n"
        "    inbox: {durable: {path: out.db}}\n"
        "edges: [{from: cam, to: snap}, {from: snap, to: out}]\n"
    )
    report = asyncio.run(Runtime(load_graph(graph), state_dir=tmp_path / "state").run())
    lines = [json.loads(x) for x in (tmp_path / "frames.jsonl").read_text().splitlines()]
    assert len(lines) == len(scene.faces) == report["totals"]["delivered"]
    store = BlobStore(tmp_path / "blobs", max_bytes=200_000)
    # Over the bound only by blobs queued packets still named at the last write (retention
    # never removes those; a busy machine's sink may still hold the last frames then).
    stats = report["nodes"]["snap"]["plugin_stats"]
    assert store.total_bytes <= 200_000 or stats["over_by_pinned"], (store.total_bytes, stats)
    exists = []
    for line in lines:
        assert line["payload"]["width"] == 640 and "detections" not in line["payload"]
        ref = PayloadRef(**line["payload_ref"])
        assert ref.content_type == "image/jpeg"
        exists.append(Path(ref.uri[7:]).exists())
        if exists[-1]:
            assert store.read(ref)[:2] == b"\xff\xd8"  # whole, and what the ref says
    # Retention removed the oldest and kept the newest, unless the sink had delivered none at
    # the last write (a busy machine): then it kept them all for their packets and said so.
    assert exists[-1] and sum(exists) + stats["removed"] == len(lines), (exists, stats)
    assert stats["removed"] or stats["over_by_pinned"], stats
    assert exists[0] is not bool(stats["removed"]), (exists, stats)


def test_a_blob_deleted_behind_the_stores_back_is_written_again(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    ref = store.put(b"abc", "image/jpeg")
    Path(ref.uri[7:]).unlink()
    assert store.put(b"abc", "image/jpeg") == ref
    assert store.read(ref) == b"abc" and store.total_bytes == 3 and len(store) == 1


def test_retention_skips_pinned_blobs_and_removes_the_next_oldest(tmp_path: Path) -> None:
    clock = Clock()
    pins: set[str] = set()
    store = BlobStore(tmp_path, max_bytes=250, clock=clock, pinned=lambda: frozenset(pins))
    first = store.put(b"a" * 100, "application/octet-stream")
    pins.add(first.uri)
    refs = [first]
    for n in range(1, 6):
        clock.now += 1
        refs.append(store.put(bytes([n]) * 100, "application/octet-stream"))
    on_disk = [r for r in refs if Path(r.uri[7:]).exists()]
    assert on_disk == [first, refs[-1]]  # model: the pinned one, then the newest that fits
    assert store.read(first) == b"a" * 100
    assert store.kept_pinned == 1 and not store.over_by_pinned
    pins.clear()
    clock.now += 1
    assert store.collect() == 0  # within its bytes: nothing to do
    refs.append(store.put(b"z" * 100, "application/octet-stream"))
    assert not Path(first.uri[7:]).exists() and store.kept_pinned == 0  # unpinned: oldest goes


def test_a_store_over_its_bytes_only_because_of_pins_says_so(tmp_path: Path) -> None:
    clock = Clock()
    pins: set[str] = set()
    store = BlobStore(tmp_path, max_bytes=150, clock=clock, pinned=lambda: frozenset(pins))
    refs = []
    for n in range(4):
        clock.now += 1
        refs.append(store.put(bytes([n]) * 100, "application/octet-stream"))
        pins.add(refs[-1].uri)
    assert all(Path(r.uri[7:]).exists() for r in refs) and store.total_bytes == 400
    assert store.kept_pinned == 3 and store.over_by_pinned  # the newest stays by itself
    pins.difference_update({refs[0].uri, refs[1].uri, refs[2].uri})
    assert store.collect() == 3 and store.total_bytes == 100
    assert not store.over_by_pinned and store.kept_pinned == 0


def test_pinned_blobs_outlive_their_age(tmp_path: Path) -> None:
    clock = Clock()
    store = BlobStore(tmp_path, max_age_s=60, clock=clock, pinned=lambda: frozenset(held))
    old = store.put(b"old", "image/png")
    other = store.put(b"other", "image/png")
    held = {old.uri}
    clock.now += 61
    assert store.collect() == 1 and store.kept_pinned == 1
    assert store.read(old) == b"old" and not Path(other.uri[7:]).exists()


def test_keep_writes_pins_the_latest_writes_but_not_blobs_found_at_open(tmp_path: Path) -> None:
    clock = Clock()
    earlier = BlobStore(tmp_path, clock=clock)
    found = [earlier.put(bytes([n]) * 100, "application/octet-stream") for n in range(3)]
    store = BlobStore(tmp_path, max_bytes=250, clock=clock, keep_writes=3)
    assert store.collect() == 1  # found at open: collected like any other, oldest first
    refs = []
    for n in range(10, 15):
        clock.now += 1
        refs.append(store.put(bytes([n]) * 100, "application/octet-stream"))
    on_disk = [r for r in found + refs if Path(r.uri[7:]).exists()]
    assert on_disk == refs[-3:]  # model: the last three writes, although over 250 bytes
    assert store.kept_pinned == 2 and store.over_by_pinned  # the newest stays by itself
    clock.now += 1
    refs.append(store.put(refs[0].sha256.encode(), "application/octet-stream"))
    assert [r for r in refs if Path(r.uri[7:]).exists()] == refs[-3:]
