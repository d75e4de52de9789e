"""`fuse`: nearest and interpolated partner readings against hand-computed values, what a
silent partner does (emit marked, or wait up to the bound), bounded buffers, hand-over."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from schnitzel import NodeContext, StreamPacket
from schnitzel_plugins.processing.fuse import Fuse, FuseConfig
from tests.processing.reference import make_window

T0 = 1_700_000_000.0
CLOSE = 1e-5
"""Epoch seconds near T0 resolve to 0.24 us; at 10 degrees per second that is 2.4e-6."""

CONFIG: dict[str, Any] = {
    "primary": {"source_id": "cam"},
    "partners": [
        {"name": "imu", "source_id": "imu", "fields": ["ax", "ay"], "strategy": "nearest"},
        {"name": "temp", "kind": "temperature", "fields": ["c"], "strategy": "interpolate"},
    ],
    "tolerance_s": 0.3,
}


def _fuse(**changes: Any) -> Fuse:
    context = NodeContext("fused", Path("."), Path("state"), logging.getLogger("t"))
    return Fuse(FuseConfig.model_validate({**CONFIG, **changes}), context)


def _cam(t: float, seq: int = 0) -> StreamPacket:
    return StreamPacket.new("event", "cam", seq, {"label": "person"}, ts=T0 + t)


def _imu(t: float, ax: float, ay: float) -> StreamPacket:
    return StreamPacket.new("sensor", "imu", 0, {"ax": ax, "ay": ay, "gz": 9.0}, ts=T0 + t)


def _temp(t: float, c: float) -> StreamPacket:
    return StreamPacket.new("temperature", "thermo", 0, {"c": c}, ts=T0 + t)


def _feed(fuse: Fuse, packets: list[StreamPacket]) -> list[StreamPacket]:
    out: list[StreamPacket] = []
    for packet in packets:
        out += fuse.process(packet)
    return out


@pytest.mark.parametrize(
    ("at", "want_c"),
    [(10.05, 20.5), (10.1, 21.0), (10.15, 21.5), (10.0, 20.0), (10.2, 22.0)],
)
def test_interpolation_matches_hand_computed_values(at: float, want_c: float) -> None:
    fuse = _fuse(on_missing="emit")
    _feed(fuse, [_temp(10.0, 20.0), _temp(10.2, 22.0), _imu(9.9, 1.0, 2.0), _imu(10.4, 3.0, 4.0)])
    (out,) = fuse.process(_cam(at))
    temp = out.payload["temp"]
    assert temp["c"] == pytest.approx(want_c, abs=CLOSE)
    exact = at in (10.0, 10.2)
    assert temp["method"] == ("nearest" if exact else "interpolate")
    assert out.payload["label"] == "person"
    assert out.meta["fused_missing"] == []


def test_nearest_takes_the_closest_reading_within_tolerance_and_the_earlier_on_a_tie() -> None:
    fuse = _fuse(on_missing="emit")
    _feed(fuse, [_temp(9.0, 1.0), _temp(12.0, 1.0)])
    _feed(fuse, [_imu(9.9, 1.0, 1.0), _imu(10.12, 2.0, 2.0), _imu(10.5, 3.0, 3.0)])
    (closest,) = fuse.process(_cam(10.05))
    assert closest.payload["imu"]["ax"] == 2.0
    assert closest.payload["imu"]["dt"] == pytest.approx(0.07, abs=CLOSE)
    assert "gz" not in closest.payload["imu"]  # only the fields asked for
    (tie,) = fuse.process(_cam(10.31))  # 10.12 and 10.5 are 0.19 away
    assert tie.payload["imu"]["ax"] == 2.0


def test_a_partner_out_of_tolerance_is_missing_and_marked() -> None:
    fuse = _fuse(on_missing="emit")
    _feed(fuse, [_imu(10.0, 1.0, 1.0), _temp(9.0, 1.0), _temp(11.0, 3.0)])
    (out,) = fuse.process(_cam(10.0))
    assert out.payload["temp"] is None
    assert out.meta["fused_missing"] == ["temp"]
    assert out.payload["imu"]["ax"] == 1.0
    assert fuse.stats()["incomplete"] == 1


def test_waiting_holds_a_primary_until_its_partners_have_caught_up() -> None:
    fuse = _fuse(on_missing="wait", wait_s=3600.0)
    assert fuse.process(_cam(10.05)) == []
    assert _feed(fuse, [_imu(10.0, 1.0, 1.0), _temp(10.0, 20.0)]) == []  # not past 10.05 yet
    assert fuse.process(_imu(10.1, 2.0, 2.0)) == []  # temp still behind
    (out,) = fuse.process(_temp(10.2, 22.0))
    assert out.payload["temp"]["c"] == pytest.approx(20.5, abs=CLOSE)
    assert out.payload["imu"]["ax"] == 1.0  # 10.0 is nearer than 10.1 (a tie: the earlier)
    assert out.meta["fused_missing"] == []


def test_emit_does_not_wait_for_a_silent_partner() -> None:
    fuse = _fuse(on_missing="emit")
    _feed(fuse, [_imu(10.0, 1.0, 1.0)])
    (out,) = fuse.process(_cam(10.1))
    assert out.meta["fused_missing"] == ["temp"]


def test_waiting_gives_up_after_the_bound_and_marks_what_is_missing() -> None:
    fuse = _fuse(on_missing="wait", wait_s=0.05)
    assert fuse.tick_interval_s is not None
    _feed(fuse, [_imu(10.0, 1.0, 1.0)])
    assert fuse.process(_cam(10.1)) == []
    released: list[StreamPacket] = []

    async def poll() -> None:
        async with asyncio.timeout(60):
            while not released:
                released.extend(fuse.tick(time.time()))
                await asyncio.sleep(0.01)

    asyncio.run(poll())
    (out,) = released
    assert out.meta["fused_missing"] == ["temp"]
    assert out.payload["imu"]["ax"] == 1.0


def test_the_buffers_are_bounded_and_their_drops_counted() -> None:
    fuse = _fuse(on_missing="wait", wait_s=3600.0, max_readings=5, max_waiting=2)
    _feed(fuse, [_imu(i * 0.01, float(i), 0.0) for i in range(10)])
    stats = fuse.stats()
    assert stats["readings"]["imu"] == 5
    assert stats["dropped_readings"]["imu"] == 5
    assert _feed(fuse, [_cam(20.0, 0), _cam(20.1, 1)]) == []
    (early,) = fuse.process(_cam(20.2, 2))  # a third waiting primary: the oldest goes out
    assert early.seq == 0
    assert fuse.stats()["released_early"] == 1
    assert [p.seq for p in fuse.flush()] == [1, 2]


def test_a_packet_of_no_stream_is_an_error_that_names_it() -> None:
    fuse = _fuse()
    stray = StreamPacket.new("sensor", "gps", 0, {"lat": 1.0}, ts=T0)
    with pytest.raises(ValueError, match="'gps'"):
        fuse.process(stray)


def test_the_buffers_are_handed_over_on_a_swap() -> None:
    old = _fuse(on_missing="wait", wait_s=3600.0)
    _feed(old, [_temp(10.0, 20.0), _imu(10.0, 1.0, 1.0), _cam(10.05)])
    new = _fuse(on_missing="wait", wait_s=3600.0, tolerance_s=0.5)
    new.import_state(old.export_state())
    _feed(new, [_imu(10.3, 2.0, 2.0)])
    (out,) = new.process(_temp(10.2, 22.0))
    assert out.payload["temp"]["c"] == pytest.approx(20.5, abs=CLOSE)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"partners": [{"name": "t", "kind": "x", "strategy": "interpolate"}]}, "needs `fields`"),
        ({"partners": [{"name": "t"}]}, "source_id, kind or both"),
        ({"partners": [{"name": "a", "kind": "x"}, {"name": "a", "kind": "y"}]}, "share a name"),
        ({"tolerance_s": 0}, "greater than 0"),
    ],
)
def test_a_config_that_cannot_work_is_refused(change: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        FuseConfig.model_validate({**CONFIG, **change})


def test_a_window_swapped_for_a_fuse_hands_nothing_over_and_the_swap_goes_on() -> None:
    """A window's state is not a fuse's, nor the other way round: each starts empty (with an
    info event) instead of refusing the swap with a KeyError ('partners', 'state')."""
    window = make_window({"size_s": 1.0, "field": "c"})
    window.process(_temp(10.0, 20.0))
    fuse = _fuse()
    fuse.import_state(window.export_state())
    assert fuse.stats()["readings"] == {"imu": 0, "temp": 0}
    back = make_window({"size_s": 1.0, "field": "c"})
    back.import_state(fuse.export_state())
    assert back.stats()["open_windows"] == 0


def test_an_interpolation_between_readings_of_opposite_sign_near_a_floats_limit_is_finite() -> None:
    """Each reading is finite (fields.py); `v1 - v0` of 1.7e308 and -1.7e308 is not."""
    from schnitzel_plugins.processing.fusion import interpolate

    assert interpolate(1.5, (1.0, {"v": 1.7e308}), (2.0, {"v": -1.7e308})) == {"v": 0.0}
    assert interpolate(1.5, (1.0, {"v": 1}), (2.0, {"v": 3})) == {"v": 2.0}
