"""A sync source's pull (`runners._pull`) against a model of what it must return: the
packets and bad records of one pull, the last thing the source gave, whether the source
ended and how. The fast path (packets only) and the slow one (None, bad records, a stop,
an exception) must agree with the model on every sequence."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from hypothesis import given
from hypothesis import strategies as st

from schnitzel.contract.packet import StreamPacket
from schnitzel.errors import BadRecord
from schnitzel.runtime.runners import _pull, _Pulled

Item = StreamPacket | BadRecord | None | str
"""What the scripted source gives: a packet, a bad record, None, or "raise" (it fails)."""


def _source(
    script: list[Item], asked: list[int], stop: threading.Event, stop_at: int
) -> Iterator[StreamPacket | BadRecord | None]:
    for index, item in enumerate(script):
        asked.append(index)
        if index == stop_at:
            stop.set()
        if isinstance(item, str):
            raise OSError(f"device gone at {index}")
        yield item


def _model(
    script: list[Item], wanted: int, stop_at_bad: bool, stop_at: int | None
) -> tuple[_Pulled, int]:
    """What one pull must return, and how many items it may ask the source for."""
    batch: list[StreamPacket] = []
    bad: list[BadRecord] = []
    last: StreamPacket | BadRecord | None = None
    for index, item in enumerate(script):
        if isinstance(item, str):
            return _Pulled(batch, bad, last, True, OSError()), index + 1
        if item is None:
            return _Pulled(batch, bad, last, False, None), index + 1
        last = item
        if isinstance(item, BadRecord):
            bad.append(item)
            if stop_at_bad:
                return _Pulled(batch, bad, last, False, None), index + 1
        else:
            assert isinstance(item, StreamPacket)
            batch.append(item)
        if len(batch) + len(bad) == wanted or index == stop_at:
            return _Pulled(batch, bad, last, False, None), index + 1
    return _Pulled(batch, bad, last, True, None), len(script)


def _item(kind: str, seq: int) -> Item:
    if kind == "packet":
        return StreamPacket.new("sensor", "src", seq, {"v": seq})
    if kind == "bad":
        return BadRecord(f"record {seq} is malformed", where=f"line {seq}")
    return None if kind == "none" else "raise"


scripts = st.lists(st.sampled_from(["packet"] * 6 + ["bad", "none", "raise"]), max_size=40).map(
    lambda kinds: [_item(kind, seq) for seq, kind in enumerate(kinds)]
)


@given(
    script=scripts,
    wanted=st.integers(1, 50),
    stop_at_bad=st.booleans(),
    stop_at=st.none() | st.integers(0, 45),
)
def test_a_pull_returns_what_the_model_says_and_asks_the_source_for_no_more(
    script: list[Item], wanted: int, stop_at_bad: bool, stop_at: int | None
) -> None:
    stop = threading.Event()
    asked: list[int] = []
    source = _source(script, asked, stop, -1 if stop_at is None else stop_at)
    pulled = _pull(source, wanted, stop_at_bad, stop if stop_at is not None else None)
    expected, most_asked = _model(script, wanted, stop_at_bad, stop_at)
    assert pulled.packets == expected.packets
    assert pulled.bad == expected.bad
    assert pulled.last is expected.last
    assert pulled.ended == expected.ended
    assert type(pulled.failure) is type(expected.failure)
    assert len(asked) == most_asked  # never a packet more than the pull hands on


def test_a_source_of_packets_only_ends_when_it_runs_out_before_the_pull_is_full() -> None:
    packets = [StreamPacket.new("sensor", "src", seq) for seq in range(5)]
    source = iter(packets)
    full = _pull(source, 5)
    assert full.packets == packets and not full.ended and full.last is packets[-1]
    assert _pull(source, 5) == _Pulled([], [], None, True, None)
