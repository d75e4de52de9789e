"""`window` against numpy over the same seeded input (out of order, late packets), its
watermark, its bounds and its hand-over on a swap."""

from __future__ import annotations

import asyncio
import math
import time
import tracemalloc
from typing import Any

import pytest
from pydantic import ValidationError

from schnitzel import StreamPacket
from schnitzel_plugins.processing.window import WindowConfig
from schnitzel_plugins.processing.windowing import WindowShape, WindowState
from tests.processing.reference import (
    BASE,
    aggregates,
    make_window,
    numbered_windows,
    run_window,
    seeded_readings,
    session_readings,
    session_windows,
)

ALL = ["count", "sum", "mean", "min", "max", "stddev", "first", "last", "p50", "p95"]


def _by_window(payloads: list[dict[str, Any]]) -> dict[tuple[int, float], dict[str, Any]]:
    windows: dict[tuple[int, float], dict[str, Any]] = {}
    for payload in payloads:
        where = (payload["key"], payload["start"])
        assert where not in windows, f"window {where} emitted twice"
        windows[where] = payload
    return windows


def _assert_same(got: dict[tuple[int, float], dict[str, Any]], want: dict[Any, Any]) -> None:
    assert set(got) == set(want)
    for where, expected in want.items():
        for name, value in expected.items():
            assert got[where][name] == pytest.approx(value, rel=1e-9, abs=1e-9), (where, name)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("lateness", [0.0, 0.5])
def test_tumbling_windows_match_numpy_with_out_of_order_and_late_packets(
    seed: int, lateness: float
) -> None:
    readings = seeded_readings(seed)
    window = make_window(
        {
            "size_s": 1.0,
            "key": "payload.sensor",
            "field": "value",
            "aggregates": ALL,
            "allowed_lateness_s": lateness,
            "on_late": "route",
        }
    )
    payloads, late = run_window(window, readings.packets())
    want, late_count = numbered_windows(readings, 1.0, 1.0, lateness)
    _assert_same(_by_window(payloads), want)
    assert late_count > 0  # the input does have late packets
    assert len(late) == late_count == window.stats()["late"]
    assert all(p["end"] == p["start"] + 1.0 for p in payloads)


@pytest.mark.parametrize("seed", [4, 5])
def test_sliding_windows_match_numpy(seed: int) -> None:
    readings = seeded_readings(seed, n=2000)
    window = make_window(
        {
            "type": "sliding",
            "size_s": 2.0,
            "slide_s": 0.5,
            "key": "payload.sensor",
            "field": "value",
            "aggregates": ALL,
            "allowed_lateness_s": 0.25,
        }
    )
    payloads, _ = run_window(window, readings.packets())
    want, late_count = numbered_windows(readings, 2.0, 0.5, 0.25)
    _assert_same(_by_window(payloads), want)
    assert window.stats()["late"] == late_count


@pytest.mark.parametrize("seed", [6, 7])
def test_session_windows_match_numpy_when_out_of_order_within_the_lateness(seed: int) -> None:
    readings = session_readings(seed)
    window = make_window(
        {
            "type": "session",
            "gap_s": 1.0,
            "key": "payload.sensor",
            "field": "value",
            "aggregates": ALL,
            "allowed_lateness_s": 1.0,
        }
    )
    payloads, _ = run_window(window, readings.packets())
    want = session_windows(readings, 1.0)
    got = _by_window(payloads)
    _assert_same(got, want)
    assert window.stats()["late"] == 0
    for (_, start), payload in got.items():  # a session ends one gap after its last packet
        assert payload["end"] >= start + 1.0


def test_a_session_bridged_by_a_late_arrival_is_one_session() -> None:
    window = make_window({"type": "session", "gap_s": 1.0, "allowed_lateness_s": 5.0})
    packets = [_reading(BASE + t, 0) for t in (0.0, 1.5, 0.8)]  # 0.8 joins 0.0 and 1.5
    payloads, _ = run_window(window, packets)
    assert [(p["start"], p["end"], p["count"]) for p in payloads] == [(BASE, BASE + 2.5, 3)]


def _reading(ts: float, key: int, value: float = 1.0, seq: int = 0) -> StreamPacket:
    return StreamPacket.new("sensor", "s", seq, {"sensor": key, "value": value}, ts=ts)


def test_a_quiet_key_is_closed_by_the_others_event_time() -> None:
    window = make_window({"size_s": 1.0, "key": "payload.sensor", "field": "value"})
    out: list[Any] = []
    for i in range(5):  # key 0 speaks during the first second only
        out += window.process(_reading(BASE + i * 0.1, 0))
    for i in range(30):  # key 1 goes on
        out += window.process(_reading(BASE + 0.5 + i * 0.1, 1))
    closed = [p.payload for p in out]
    assert {"key": 0, "start": BASE, "count": 5, "closed": "watermark"}.items() <= closed[0].items()


def test_an_idle_input_moves_the_watermark_with_the_clock() -> None:
    window = make_window({"size_s": 1.0, "idle_timeout_s": 2.0})
    now = time.time()
    assert window.process(_reading(now, 0)) == []
    assert list(window.tick(time.time() + 0.5)) == []  # not idle long enough yet
    later = list(window.tick(time.time() + 10.0))
    assert len(later) == 1
    assert later[0].payload["count"] == 1
    assert later[0].payload["closed"] == "watermark"


def test_arrival_time_windows_close_on_the_clock() -> None:
    window = make_window({"size_s": 0.5, "time": "arrival"})
    assert window.tick_interval_s is not None
    for i in range(3):
        assert window.process(_reading(0.0, 0, seq=i)) == []  # ts ignored: arrival counts
    closed = list(window.tick(time.time() + 5.0))
    assert sum(p.payload["count"] for p in closed) == 3  # one window, or two at a boundary


def test_the_key_bound_drops_new_keys_when_told_and_counts_them() -> None:
    window = make_window(
        {"size_s": 10.0, "key": "payload.sensor", "max_keys": 3, "when_full": "drop_new"}
    )
    for key in range(5):
        assert window.process(_reading(BASE + key * 0.01, key)) == []
    stats = window.stats()
    assert (stats["keys"], stats["dropped_full"], stats["evicted"]) == (3, 2, 0)
    payloads, _ = run_window(window, [])
    assert sorted(p["key"] for p in payloads) == [0, 1, 2]


def test_the_key_bound_emits_the_oldest_windows_early_by_default() -> None:
    window = make_window({"size_s": 10.0, "key": "payload.sensor", "max_keys": 3})
    out: list[Any] = []
    for key in range(5):
        out += window.process(_reading(BASE + key * 0.01, key))
    assert [(p.payload["key"], p.payload["closed"]) for p in out] == [(0, "full"), (1, "full")]
    assert window.stats()["evicted"] == 2
    assert window.stats()["keys"] == 3


def test_the_byte_bound_holds_with_percentiles() -> None:
    readings = seeded_readings(8, n=3000, late_share=0.0)
    bound = 4096
    window = make_window(
        {
            "size_s": 5.0,
            "key": "payload.sensor",
            "field": "value",
            "aggregates": ["count", "p99"],
            "max_bytes": bound,
        }
    )
    emitted = 0
    for packet in readings.packets():
        emitted += sum(p.payload["count"] for p in window.process(packet))
        assert window.stats()["state_bytes"] <= bound
    emitted += sum(p.payload["count"] for p in window.flush())
    stats = window.stats()
    assert stats["evicted"] > 0
    assert stats["dropped_full"] == 0
    assert emitted + stats["late"] == len(readings.ts)  # evicted early, never lost


def test_a_packet_without_the_field_fails_and_changes_nothing() -> None:
    window = make_window({"size_s": 1.0, "field": "value"})
    bad = StreamPacket.new("sensor", "s", 0, {"other": 1}, ts=BASE)
    with pytest.raises(ValueError, match=r"payload\.value"):
        window.process(bad)
    text = StreamPacket.new("sensor", "s", 0, {"value": "high"}, ts=BASE)
    with pytest.raises(ValueError, match="must be a finite number"):
        window.process(text)
    assert window.stats()["open_windows"] == 0


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"type": "tumbling"}, "needs size_s"),
        ({"type": "session"}, "needs gap_s"),
        ({"type": "sliding", "size_s": 1.0}, "needs slide_s"),
        ({"type": "sliding", "size_s": 1.0, "slide_s": 2.0}, "must not exceed"),
        ({"type": "sliding", "size_s": 100.0, "slide_s": 0.01}, "at most 1000"),
        ({"size_s": 1.0, "aggregates": ["mean"]}, "set `field`"),
        ({"size_s": 1.0, "field": "v", "aggregates": ["median"]}, "unknown aggregate"),
        ({"size_s": 1.0, "key": "payload"}, "pattern"),
    ],
)
def test_a_config_that_cannot_work_is_refused_with_the_reason(
    config: dict[str, Any], words: str
) -> None:
    with pytest.raises(ValidationError, match=words):
        WindowConfig.model_validate(config)


def test_the_open_windows_are_handed_over_to_a_new_config() -> None:
    readings = seeded_readings(9, n=3000)
    packets = readings.packets()
    config = {
        "size_s": 1.0,
        "key": "payload.sensor",
        "field": "value",
        "aggregates": ["count", "mean", "p95"],
        "allowed_lateness_s": 0.5,
    }
    old = make_window(config)
    out: list[Any] = []
    for packet in packets[:1500]:
        out += old.process(packet)
    new = make_window({**config, "aggregates": ["count", "mean", "max", "p95"]})
    new.import_state(old.export_state())
    for packet in packets[1500:]:
        out += new.process(packet)
    out += list(new.flush())
    got = _by_window([p.payload for p in out])
    want, _ = numbered_windows(readings, 1.0, 1.0, 0.5)
    assert set(got) == set(want)
    for where, expected in want.items():  # windows open at the swap carry on whole
        assert got[where]["count"] == expected["count"]
        assert got[where]["mean"] == pytest.approx(expected["mean"], rel=1e-9)
        assert got[where]["p95"] == pytest.approx(expected["p95"], rel=1e-9)
    assert [p.seq for p in out] == list(range(len(out)))


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"size_s": 2.0}, "type, size"),
        ({"key": None}, "key"),
        ({"aggregates": ["count", "p50"], "field": "value"}, "percentiles"),
    ],
)
def test_a_hand_over_the_new_config_cannot_use_is_refused(
    change: dict[str, Any], words: str
) -> None:
    config = {"size_s": 1.0, "key": "payload.sensor", "field": "value"}
    old = make_window(config)
    old.process(_reading(BASE, 0))
    new = make_window({**config, **change})
    with pytest.raises(ValueError, match=words):
        new.import_state(old.export_state())


def test_numpy_reference_is_itself_sound() -> None:
    """The reference's aggregates on a hand-made window (so a shared mistake would show)."""
    import numpy as np

    got = aggregates(np.array([3.0, 1.0, 2.0]), np.array([30.0, 10.0, 20.0]))
    assert got["first"] == 10.0 and got["last"] == 30.0
    assert got["p50"] == 20.0 and got["stddev"] == pytest.approx((200 / 3) ** 0.5)


def test_closing_with_open_windows_nobody_took_says_so() -> None:
    events: list[tuple[str, str]] = []
    old = make_window({"size_s": 10.0}, events=events)
    old.process(_reading(BASE, 0))
    new = make_window({"size_s": 10.0})
    new.import_state(old.export_state())
    asyncio.run(old.close())
    assert events == []  # handed over: the new node holds them
    lost = make_window({"size_s": 10.0}, events=events)
    lost.process(_reading(BASE, 0))
    asyncio.run(lost.close())
    assert events == [
        (
            "warning",
            "1 open windows were not emitted (the node closed before "
            "they did, and nothing took them over)",
        )
    ]


def test_a_long_session_holds_one_close_entry_not_one_per_packet() -> None:
    """A session that grows with every packet is queued to close once, not once per packet:
    3600 s sessions at 1000 packets/s otherwise hold millions of entries outside max_bytes."""
    state = WindowState(WindowShape("session", 0.0, 0.0, 3600.0), False, 0.0, 10, 4096, "drop_new")
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(50_000):
            ts = BASE + i * 0.001
            assert state.add("k", ts, 1.0, ts - 1.0)[0] == "added"
            assert state.close_until(ts - 1.0) == []
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert state.open == 1
    assert held < 100_000, f"{held} bytes held for one open session"
    closed = state.close_until(BASE + 50_000 * 0.001 + 3600.0)
    assert [(w.start, w.closed, w.acc.count) for w in closed] == [(BASE, "watermark", 50_000)]


def test_an_aggregate_past_a_floats_range_is_null_not_an_infinity() -> None:
    """Each reading is finite (fields.py), but two near 1.8e308 sum past a float's range, and
    the running mean of 1.7e308 and -1.7e308 overflows on the way: JSON holds no infinity."""
    from schnitzel_plugins.processing.aggregates import Accumulator

    names = ("count", "sum", "mean", "min", "max", "stddev")
    same = Accumulator(keep_values=False)
    same.add(1.7e308, 1.0)
    same.add(1.7e308, 2.0)
    assert same.result(names) == {
        "count": 2,
        "sum": None,
        "mean": 1.7e308,
        "min": 1.7e308,
        "max": 1.7e308,
        "stddev": 0.0,
    }
    apart = Accumulator(keep_values=True)
    apart.add(1.7e308, 1.0)
    apart.add(-1.7e308, 2.0)
    result = apart.result((*names, "p50", "p75"))
    assert result["mean"] is None and result["stddev"] is None
    assert result["sum"] == 0.0
    assert result["p50"] == 0.0 and math.isclose(result["p75"], 1.7e308 / 2)
