"""`NodeContext.refs_held()`: the blob URIs undelivered packets point at. A durable inbox counts
its rows' refs from admit to delete, keeps parked rows' refs, and counts again from its file
when it reopens; the runtime adds what memory inboxes and held batches hold, and answers a
plugin's thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from schnitzel import NodeContext, PayloadRef, Sink, Source, StreamPacket
from schnitzel.contract.refs import packet_refs
from schnitzel.runtime.commit_order import CommitOrder
from schnitzel.runtime.durable_inbox import DurableInbox
from schnitzel.runtime.held_refs import HeldRefs
from schnitzel.runtime.inbox import Inbox, InFlight
from schnitzel.runtime.metrics import NodeMetrics
from schnitzel.validate import validate_text
from tests.runtime.harness import run

DIGEST = "0" * 64


def ref(name: str) -> PayloadRef:
    return PayloadRef(f"file:///blobs/{name}.jpg", "image/jpeg", 1, DIGEST)


def event(seq: int, crop: str | None, frame: str | None = None) -> StreamPacket:
    """An event whose payload_ref is its crop and whose payload names its frame too."""
    payload: dict[str, Any] = {"n": seq}
    if frame is not None:
        payload["snapshot"] = {"frame": {"uri": ref(frame).uri, "sha256": DIGEST}}
    return StreamPacket.new(
        "event", "cam", seq, payload, payload_ref=None if crop is None else ref(crop)
    )


def test_a_packet_names_its_payload_ref_and_the_ref_objects_in_its_payload() -> None:
    assert packet_refs(event(0, "crop", "frame")) == (ref("crop").uri, ref("frame").uri)
    assert packet_refs(event(1, None, "frame")) == ()  # no payload_ref: nothing is looked for
    assert packet_refs(event(2, "same", "same")) == (ref("same").uri,)


def make_inbox(path: Path) -> DurableInbox:
    return DurableInbox(
        8, "block", NodeMetrics(), InFlight(), path, 1 << 30, None, "NORMAL", lambda *_: None
    )


def held(inbox: DurableInbox) -> dict[str, int]:
    return {uri.rsplit("/", 1)[1][:-4]: n for uri, n in inbox.refs.counts.items()}


async def durable_scenario(path: Path) -> None:
    inbox = make_inbox(path)
    await inbox.open()
    await inbox.put([event(0, "a", "fa"), event(1, "b", "fa"), event(2, None), event(3, "c")])
    assert held(inbox) == {"a": 1, "fa": 2, "b": 1, "c": 1}
    first = inbox.take(1)
    first.settle()  # delivered
    assert held(inbox) == {"fa": 1, "b": 1, "c": 1}
    second = inbox.take(1)
    second.settle(None, None, [(second[0], "refused")])  # parked: may be requeued, still held
    await inbox.shutdown()
    assert held(inbox) == {"fa": 1, "b": 1, "c": 1}

    again = make_inbox(path)  # a restart: counted afresh from the queued and parked rows
    await again.open()
    assert held(again) == {"fa": 1, "b": 1, "c": 1}
    await again.wait_items()  # read back from disk
    rest = again.take(10)
    assert [p.seq for p in rest] == [2, 3]
    rest.settle()
    assert held(again) == {"fa": 1, "b": 1}  # only the parked row's
    await again.shutdown()


def test_a_durable_inbox_holds_the_refs_of_its_rows_until_they_are_delivered(
    tmp_path: Path,
) -> None:
    asyncio.run(durable_scenario(tmp_path / "inbox.db"))


URIS = [ref(name).uri for name in ("one", "two", "three")]


class Events(Source):
    """Three events with snapshots, in one pull."""

    name: ClassVar[str] = "events-with-refs"

    def packets(self) -> Iterator[StreamPacket]:
        for n, name in enumerate(("one", "two", "three")):
            yield event(n, name)


class Asking(Sink):
    """Delivers one packet per call from its thread, asking what is held each time."""

    name: ClassVar[str] = "asking"
    blocking: ClassVar[bool] = True
    max_batch = 1
    seen: ClassVar[list[tuple[frozenset[str], bool]]] = []

    def __init__(self, config: Any, context: NodeContext) -> None:
        super().__init__(config, context)

    def deliver(self, packet: StreamPacket) -> None:
        on_loop_thread = threading.current_thread() is threading.main_thread()
        Asking.seen.append((self.context.refs_held(), on_loop_thread))


def test_refs_held_answers_a_plugin_thread_with_queued_and_held_packets(tmp_path: Path) -> None:
    module = __name__
    path = tmp_path / "g.yaml"
    path.write_text(
        f"version: 2\nruntime: {{allow_modules: [{module}]}}\nnodes:\n"
        f"  - {{id: src, kind: source, plugin: '{module}:Events'}}\n"
        f"  - {{id: out, kind: sink, plugin: '{module}:Asking'}}\n"
        "edges: [{from: src, to: out}]\n"
    )
    result = validate_text(path.read_text(), source=str(path), path=path)
    assert result.graph is not None, [p.render() for p in result.report.problems]
    Asking.seen.clear()
    report = run(result.graph, tmp_path)
    assert report["nodes"]["out"]["delivered"] == 3
    # the packet being delivered (the batch the sink holds) and those queued behind it
    assert [sorted(s) for s, _ in Asking.seen] == [sorted(URIS), sorted(URIS[1:]), URIS[2:]]
    assert not any(on_loop for _, on_loop in Asking.seen)  # asked from the node's thread


def test_after_the_run_stopped_asking_fails_at_once_instead_of_waiting() -> None:
    async def asked_from_a_thread_after_close() -> None:
        refs = HeldRefs()
        refs.loop = asyncio.get_running_loop()
        assert await asyncio.to_thread(refs.now) == frozenset()  # answered by the loop
        refs.close()
        with pytest.raises(RuntimeError, match="stopped"):
            await asyncio.to_thread(refs.now)

    asyncio.run(asked_from_a_thread_after_close())


def test_a_batch_whose_outputs_wait_for_their_commit_keeps_its_refs_held() -> None:
    """A node settles a batch once its outputs are committed (runtime/commit_order.py); until
    then the blobs its packets name are held, as those of the batch in its plugin are."""

    async def scenario() -> tuple[frozenset[str], frozenset[str]]:
        inbox = Inbox(8, "block", NodeMetrics(), InFlight())
        await inbox.put([event(0, "one"), event(1, "two")])
        taken = inbox.take(8)
        node = SimpleNamespace(inbox=inbox, batch=None, unsettled=CommitOrder())
        refs = HeldRefs()
        refs.nodes = {"mid": node}  # type: ignore[dict-item]
        commit = asyncio.get_running_loop().create_future()
        node.unsettled.add([commit], taken.settle, taken.abandon, taken)
        waiting = refs.scan()
        commit.set_result(True)
        for _ in range(3):
            await asyncio.sleep(0)
        return waiting, refs.scan()

    waiting, settled = asyncio.run(scenario())
    assert waiting == frozenset(URIS[:2])
    assert settled == frozenset()
