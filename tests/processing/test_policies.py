"""The policies threshold, rate_limit and deadband, packet by packet: hysteresis that does not
flap on a noisy signal, a minimum duration, token buckets per key, deadbands absolute and in
percent, and the state each hands over on a swap (and ignores from another policy)."""

from __future__ import annotations

import logging
import math
import random
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from schnitzel.contract.packet import StreamPacket
from schnitzel.registry.plugin import NodeContext, Plugin
from schnitzel.runtime.processing import Routed
from schnitzel_plugins.core.dedup import Dedup
from schnitzel_plugins.processing.deadband import Deadband
from schnitzel_plugins.processing.rate_limit import RateLimit
from schnitzel_plugins.processing.threshold import Threshold

T0 = 1_700_000_000.0


def make(cls: type[Plugin], **config: Any) -> Any:
    context = NodeContext("policy", Path("."), Path("state"), logging.getLogger("t"))
    return cls(cls.Config.model_validate(config), context)


def reading(value: float, t: float = 0.0, source: str = "s", seq: int = 0) -> StreamPacket:
    return StreamPacket.new("sensor", source, seq, {"value": value}, ts=T0 + t)


def outputs(plugin: Any, packets: list[StreamPacket]) -> list[Any]:
    out: list[Any] = []
    for packet in packets:
        result = plugin.process(packet)
        if result is None:
            continue
        out.extend(result if isinstance(result, list) else [result])
    return out


def noisy_signal(seed: int) -> list[StreamPacket]:
    """A reading that rises through 80, stays there, and falls back, with noise of +-1.5
    around the level: 10 readings a second for 60 s."""
    rng = random.Random(seed)
    packets = []
    for n in range(600):
        t = n / 10
        level = 70 + min(t, 20) - max(t - 40, 0)  # 70 -> 90 by 20 s, back to 70 by 60 s
        packets.append(reading(level + rng.uniform(-1.5, 1.5), t, seq=n))
    return packets


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_hysteresis_does_not_flap_on_a_noisy_signal_around_the_threshold(seed: int) -> None:
    packets = noisy_signal(seed)
    flapping = outputs(make(Threshold, above=80.0), packets)
    steady = outputs(make(Threshold, above=80.0, hysteresis=4.0), packets)
    assert len(flapping) > 2  # without hysteresis the noise crosses 80 back and forth
    assert [a.payload["state"] for a in steady] == ["raised", "cleared"]
    raised, cleared = steady
    assert raised.payload["value"] > 80.0 and cleared.payload["value"] < 76.0
    assert raised.kind == "alert" and raised.payload["side"] == "above"


def test_a_minimum_duration_ignores_short_spikes_and_says_since_when() -> None:
    values = [70, 95, 70, 95, 95, 95, 95, 70, 70, 70, 70, 70]  # one reading a second
    packets = [reading(v, t, seq=t) for t, v in enumerate(values)]
    alerts = outputs(make(Threshold, above=80.0, min_duration_s=2.0), packets)
    assert [a.payload["state"] for a in alerts] == ["raised", "cleared"]
    raised, cleared = alerts
    assert raised.payload["since"] == "2023-11-14T22:13:23Z"  # the spike at t=3, not t=1
    assert raised.payload["at"] == "2023-11-14T22:13:25Z"  # after 2 s above
    assert raised.payload["first_value"] == 95 and raised.payload["limit"] == 80.0
    assert cleared.payload["since"] == "2023-11-14T22:13:27Z"
    assert cleared.ts == T0 + 9


def test_below_and_above_keep_one_state_per_key() -> None:
    policy = make(Threshold, above=80.0, below=10.0)
    packets = [
        reading(90, 0, "a"),
        reading(5, 1, "b"),
        reading(50, 2, "a"),
        reading(50, 3, "b"),
        reading(95, 4, "b"),
    ]
    got = [
        (a.payload["key"], a.payload["side"], a.payload["state"]) for a in outputs(policy, packets)
    ]
    assert got == [
        ("a", "above", "raised"),
        ("b", "below", "raised"),
        ("a", "above", "cleared"),
        ("b", "below", "cleared"),
        ("b", "above", "raised"),
    ]
    assert policy.stats()["active"] == 1


def test_a_threshold_needs_a_limit_and_a_reading() -> None:
    with pytest.raises(ValidationError, match="set `above`, `below` or both"):
        Threshold.Config.model_validate({})
    with pytest.raises(ValueError, match=r"payload\.value must be a finite number, not 'hot'"):
        make(Threshold, above=1.0).process(StreamPacket.new("sensor", "s", 0, {"value": "hot"}))


@pytest.mark.parametrize("policy", [Threshold, Deadband])
@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_a_reading_that_is_not_finite_fails_its_packet(policy: type[Plugin], value: float) -> None:
    """An infinity past `above` raised an alert no JSON can hold (a durable inbox or a network
    sink then refuses it); a NaN slipped past every comparison."""
    config = {"above": 1.0} if policy is Threshold else {"delta": 1.0}
    plugin = make(policy, **config)
    with pytest.raises(ValueError, match=r"payload\.value must be a finite number"):
        plugin.process(reading(value))


def test_a_raised_alert_forgotten_with_its_key_is_counted() -> None:
    """Over max_keys the least recently seen key goes; its raised alert will never be
    cleared, so it is counted: raised = cleared + active + forgotten."""
    threshold = make(Threshold, above=1.0, max_keys=3)
    outputs(threshold, [reading(5.0, source=f"s{i}") for i in range(5)])
    outputs(threshold, [reading(0.0, source="s4")])
    stats = threshold.stats()
    assert (stats["raised"], stats["cleared"], stats["active"]) == (5, 1, 2)
    assert stats["forgotten"] == 2
    assert stats["raised"] == stats["cleared"] + stats["active"] + stats["forgotten"]


def test_a_swapped_threshold_does_not_raise_again_what_is_raised() -> None:
    old = make(Threshold, above=80.0)
    assert len(outputs(old, [reading(90, 0)])) == 1
    new = make(Threshold, above=80.0, hysteresis=5.0)
    new.import_state(old.export_state())
    assert outputs(new, [reading(91, 1), reading(77, 2)]) == []  # still raised, in band
    assert [a.payload["state"] for a in outputs(new, [reading(70, 3)])] == ["cleared"]


def test_rate_limit_passes_rate_times_time_plus_burst_per_key_and_counts_the_rest() -> None:
    policy = make(RateLimit, rate_hz=10.0, burst=5, clock="event")
    # 100 packets/s for 2 s from each of two sources
    packets = [reading(1, n / 100, source, n) for n in range(200) for source in ("a", "b")]
    passed = outputs(policy, packets)
    per_source = {s: sum(p.source_id == s for p in passed) for s in ("a", "b")}
    # 5 at once, then one each 0.1 s over 1.99 s: 5 + 19
    assert per_source == {"a": 24, "b": 24}
    assert policy.stats() == {"passed": 48, "limited": 352, "keys": 2, "clock_resets": 0}


def test_rate_limit_on_event_time_is_not_starved_by_one_reading_stamped_far_ahead() -> None:
    policy = make(RateLimit, rate_hz=10.0, burst=1, clock="event", by=None)
    year = 365 * 86400.0
    assert outputs(policy, [reading(1, year, seq=0)])  # a device clock a year ahead, once
    # then 1 Hz readings on the right clock, under the 10 Hz limit: every one passes
    passed = outputs(policy, [reading(1, float(n), seq=n) for n in range(1, 101)])
    assert len(passed) == 100
    assert policy.stats()["clock_resets"] == 1


def test_rate_limit_routes_the_excess_to_its_port_when_asked() -> None:
    policy = make(RateLimit, rate_hz=1.0, burst=2, clock="event", excess="port", by=None)
    results = [policy.process(reading(1, n / 10, seq=n)) for n in range(10)]
    excess = [r for r in results if isinstance(r, Routed)]
    assert len(excess) == 8 and {r.port for r in excess} == {"excess"}
    assert RateLimit.output_ports(policy.config) == ("out", "excess")
    assert RateLimit.output_ports(make(RateLimit, rate_hz=1.0).config) == ("out",)


def test_deadband_passes_moves_larger_than_delta_per_key() -> None:
    policy = make(Deadband, delta=0.5)
    values = [20.0, 20.3, 20.6, 20.7, 21.2, 19.0]
    passed = outputs(policy, [reading(v, seq=n) for n, v in enumerate(values)])
    assert [p.payload["value"] for p in passed] == [20.0, 20.6, 21.2, 19.0]
    other = outputs(policy, [reading(20.1, source="other")])
    assert len(other) == 1  # the first reading of a key always passes


def test_deadband_in_percent_of_the_last_reading_passed() -> None:
    policy = make(Deadband, delta=10.0, mode="percent")
    values = [100.0, 109.0, 111.0, 120.0, 123.0, 0.5]
    passed = outputs(policy, [reading(v, seq=n) for n, v in enumerate(values)])
    assert [p.payload["value"] for p in passed] == [100.0, 111.0, 123.0, 0.5]


def test_state_from_another_policy_is_ignored_not_refused() -> None:
    dedup = make(Dedup)
    dedup.process(reading(1))
    for cls, config in ((Threshold, {"above": 1.0}), (RateLimit, {"rate_hz": 1.0}),
                        (Deadband, {"delta": 1.0})):  # fmt: skip
        policy = make(cls, **config)
        policy.import_state(dedup.export_state())  # a swap dedup -> this policy goes ahead
        policy.import_state(make(Threshold, above=5.0).export_state())


def test_importing_state_leaves_the_exporting_policy_as_it_was() -> None:
    """A swap can still be refused after the hand-over: the running node must not change."""
    old = make(RateLimit, rate_hz=10.0, burst=5, clock="event", max_keys=10)
    outputs(old, [reading(1, 0.0, source=f"s{n}", seq=n) for n in range(3)])
    before = {k: list(v) for k, v in old.export_state()["buckets"].items()}
    new = make(RateLimit, rate_hz=10.0, burst=1, clock="event", max_keys=1)
    new.import_state(old.export_state())
    assert len(new.export_state()["buckets"]) == 1
    assert {k: list(v) for k, v in old.export_state()["buckets"].items()} == before
    band = make(Deadband, delta=0.5, max_keys=10)
    outputs(band, [reading(20.0, source=f"s{n}", seq=n) for n in range(3)])
    kept = dict(band.export_state()["last"])
    make(Deadband, delta=0.5, max_keys=1).import_state(band.export_state())
    assert dict(band.export_state()["last"]) == kept
