"""Behaviour of the reference plugins (core, io.jsonl, control), called directly."""

from __future__ import annotations

import asyncio
import itertools
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from schnitzel.contract.packet import StreamPacket
from schnitzel.errors import BadRecord
from schnitzel.registry.plugin import NodeContext, Plugin
from schnitzel_plugins.control.pid import Pid
from schnitzel_plugins.control.plant import SimulatedPlant
from schnitzel_plugins.core import dedup as dedup_module
from schnitzel_plugins.core.dedup import Dedup
from schnitzel_plugins.core.delay import DelayPlugin
from schnitzel_plugins.core.sample import Sample
from schnitzel_plugins.core.synthetic import Synthetic
from schnitzel_plugins.io.jsonl import JsonlSource
from schnitzel_plugins.io.jsonl_sink import JsonlSink

P = TypeVar("P", bound=Plugin)
FEEDBACK = Path(__file__).resolve().parents[2] / "graphs" / "feedback.yaml"


def make(cls: type[P], node_id: str = "n", graph_dir: Path = Path("."), **options: Any) -> P:
    context = NodeContext(node_id, graph_dir, graph_dir / "state", logging.getLogger("t"))
    return cls(cls.Config(**options), context)


def opened(plugin: P) -> P:
    asyncio.run(plugin.open())
    return plugin


def pkt(seq: int = 0, payload: Any = None, source: str = "s") -> StreamPacket:
    return StreamPacket.new("sensor", source, seq, payload)


# --- synthetic ---------------------------------------------------------------------------


def test_synthetic_emits_count_packets_keyed_by_node_id_and_seq() -> None:
    packets = list(make(Synthetic, "gen", count=3, kind="telemetry").packets())
    assert [p.seq for p in packets] == [0, 1, 2]
    assert [p.idempotency_key for p in packets] == ["gen:0", "gen:1", "gen:2"]
    assert {p.source_id for p in packets} == {"gen"}
    assert {p.kind for p in packets} == {"telemetry"}
    assert len({p.packet_id for p in packets}) == 3
    assert list(make(Synthetic, count=0).packets()) == []


def test_synthetic_uses_the_configured_source_id_and_runs_forever_without_count() -> None:
    packets = list(itertools.islice(make(Synthetic, "gen", source_id="cam").packets(), 1000))
    assert packets[999].idempotency_key == "cam:999"


def test_synthetic_gives_each_packet_its_own_copy_of_the_payload_template() -> None:
    plugin = make(Synthetic, count=2, payload={"target": 21.5})
    first, second = plugin.packets()
    assert first.payload == second.payload == {"target": 21.5}
    assert first.payload is not second.payload
    first.payload["target"] = 0
    assert second.payload == plugin.config.payload == {"target": 21.5}


@pytest.mark.parametrize("limit", [1, 4])  # 1: what a paced source asks for
def test_synthetic_makes_the_same_packets_a_batch_at_a_time_as_one_at_a_time(limit: int) -> None:
    template = {"target": 21.5}
    batches = make(Synthetic, "gen", count=10, payload=template).packets()
    made: list[StreamPacket] = []
    while batch := batches.next_batch(limit):
        assert len(batch) <= limit
        made += batch
    assert batches.next_batch(limit) == []
    one_by_one = list(make(Synthetic, "gen", count=10, payload=template).packets())
    fields = [(p.kind, p.source_id, p.seq, p.payload, p.meta) for p in made]
    assert fields == [(p.kind, p.source_id, p.seq, p.payload, p.meta) for p in one_by_one]
    assert len({id(p.payload) for p in made}) == 10  # each its own copy of the template
    assert len({p.packet_id for p in made + one_by_one}) == 20


def test_synthetic_mixes_next_and_next_batch_in_one_stream_of_seqs() -> None:
    packets = make(Synthetic, "gen").packets()
    first = next(packets)
    batch = packets.next_batch(256)
    assert [first.seq] + [p.seq for p in batch] == list(range(257))
    assert next(packets).seq == 257


def test_synthetic_is_paced_to_its_configured_rate() -> None:
    assert make(Synthetic, rate_hz=25.0).rate_hz() == 25.0
    assert make(Synthetic).rate_hz() is None


# --- sample ------------------------------------------------------------------------------


def test_sample_keeps_one_of_every_n_across_batch_boundaries() -> None:
    sample = make(Sample, every=3)
    stream = [pkt(seq) for seq in range(10)]
    kept = sample.process_batch(stream[:2]) + sample.process_batch(stream[2:7])
    kept += sample.process_batch(stream[7:])
    assert [p.seq for p in kept] == [0, 3, 6, 9]


@given(
    every=st.integers(min_value=1, max_value=7),
    sizes=st.lists(st.integers(min_value=0, max_value=12), max_size=12),
    batched=st.lists(st.booleans(), min_size=12, max_size=12),
)
def test_sample_process_batch_agrees_with_process_for_any_split(
    every: int, sizes: list[int], batched: list[bool]
) -> None:
    stream = [pkt(seq) for seq in range(sum(sizes))]
    one_by_one = make(Sample, every=every)
    expected = [p for p in stream if one_by_one.process(p) is not None]
    assert [p.seq for p in expected] == list(range(0, len(stream), every))
    mixed, start = make(Sample, every=every), 0
    kept: list[StreamPacket] = []
    for size, use_batch in zip(sizes, batched, strict=False):
        chunk = stream[start : start + size]
        start += size
        if use_batch:  # the runtime falls back to process() for a batch: state is shared
            kept += mixed.process_batch(chunk)
        else:
            kept += [p for p in chunk if mixed.process(p) is not None]
    assert kept == expected


# --- dedup -------------------------------------------------------------------------------


def passed(plugin: Dedup, packets: list[StreamPacket]) -> list[StreamPacket]:
    return [p for p in packets if plugin.process(p) is not None]


def test_dedup_drops_repeats_of_an_idempotency_key() -> None:
    packets = [pkt(0), pkt(1), pkt(0), pkt(1, source="other"), pkt(1)]
    kept = passed(make(Dedup), packets)
    assert [p.idempotency_key for p in kept] == ["s:0", "s:1", "other:1"]


def test_dedup_drops_repeats_of_a_payload_field() -> None:
    values = [{"id": "a"}, {"id": "b"}, {"id": "a", "x": 1}, {"id": ["l"]}, {"id": ["l"]}]
    packets = [pkt(seq, value) for seq, value in enumerate(values)]
    assert [p.seq for p in passed(make(Dedup, key="payload.id"), packets)] == [0, 1, 3]


def test_dedup_remembers_only_the_window_newest_keys() -> None:
    dedup = make(Dedup, key="payload.k", window=2)
    packets = [pkt(seq, {"k": k}) for seq, k in enumerate("abcacb")]
    # a b c: a is forgotten; a passes again and pushes b out; c is remembered; b passes
    assert [p.payload["k"] for p in passed(dedup, packets)] == ["a", "b", "c", "a", "b"]


def test_dedup_forgets_keys_older_than_window_s(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = SimpleNamespace(now=100.0)
    monkeypatch.setattr(dedup_module, "time", SimpleNamespace(monotonic=lambda: clock.now))
    dedup = make(Dedup, window_s=10.0)
    assert dedup.process(pkt(0)) is not None
    clock.now = 109.0
    assert dedup.process(pkt(0)) is None
    assert dedup.process(pkt(1)) is not None
    clock.now = 110.5  # s:0 is 10.5 s old, s:1 only 1.5 s
    assert dedup.process(pkt(0)) is not None
    assert dedup.process(pkt(1)) is None


@pytest.mark.parametrize("payload", [{"other": 1}, None, {"id": {"nested": 1}}])
def test_dedup_refuses_a_packet_without_the_configured_payload_field(payload: Any) -> None:
    with pytest.raises(ValueError, match=r"payload\.id\.x"):
        make(Dedup, key="payload.id.x").process(pkt(0, payload))


# --- delay -------------------------------------------------------------------------------


def test_delay_starts_with_the_initial_payload_and_forwards_inputs_unchanged() -> None:
    delay = make(DelayPlugin, "loop", initial={"value": 15.0}, kind="telemetry")
    (first,) = delay.initial_packets()
    assert (first.kind, first.source_id, first.seq) == ("telemetry", "loop", 0)
    assert first.payload == {"value": 15.0}
    packet = pkt(4, {"value": 16.0})
    assert delay.process(packet) is packet


# --- jsonl -------------------------------------------------------------------------------


def test_jsonl_sink_writes_packets_the_jsonl_source_restores_identically(tmp_path: Path) -> None:
    new = StreamPacket.new
    written = [  # ts with whole microseconds: the portable encoding keeps microseconds
        new("telemetry", "room", 7, {"v": [1, 2.5, None]}, {"trace": "t1"}, ts=1.7e9 + 0.123456),
        new("event", "door", 0, "open", ts=1_600_000_000.0),
        new("sensor", "s", 3, None, {"idempotency_key": "k"}, ts=86_400.5),
    ]
    sink = make(JsonlSink, graph_dir=tmp_path, path="out/log.jsonl")
    asyncio.run(sink.open())
    sink.deliver(written[0])
    sink.deliver_batch(written[1:])
    asyncio.run(sink.close())
    restored = list(opened(make(JsonlSource, graph_dir=tmp_path, path="out/log.jsonl")).packets())
    assert restored == written  # packet_id, ts, kind, source_id, seq, payload, meta, ref


def test_jsonl_source_makes_packets_of_plain_objects_numbered_by_line(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text('{"a": 1}\n\n{"b": [2]}\n   \n{"c": {"d": 3}}\n')
    packets = list(
        opened(make(JsonlSource, "reader", graph_dir=tmp_path, path="in.jsonl")).packets()
    )
    assert [p.payload for p in packets] == [{"a": 1}, {"b": [2]}, {"c": {"d": 3}}]
    assert [p.seq for p in packets] == [0, 2, 4]  # blank lines skipped, still counted
    assert {(p.kind, p.source_id) for p in packets} == {("event", "reader")}


def test_jsonl_source_yields_a_bad_record_naming_the_file_and_line_and_goes_on(
    tmp_path: Path,
) -> None:
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\n\nnot json\n{"b": 2}\n')
    packets = opened(make(JsonlSource, graph_dir=tmp_path, path="bad.jsonl")).packets()
    assert next(packets).payload == {"a": 1}
    bad = next(packets)
    assert isinstance(bad, BadRecord)
    assert str(bad).startswith("bad.jsonl line 3: not JSON") and str(bad).endswith("'not json'")
    assert bad.details == {"file": str(tmp_path / "bad.jsonl"), "line": 3}
    assert next(packets).payload == {"b": 2}  # the line after it is read


# --- pid and plant -----------------------------------------------------------------------


def test_pid_emits_one_control_packet_per_set_point_from_the_latest_measurement() -> None:
    pid = make(Pid, "ctl", kp=2.0)
    assert pid.process(pkt(0, {"value": 10.0})) is None
    assert pid.process(pkt(1, {"value": 20.0, "target": 99.0})) is None  # still a measurement
    outputs = [pid.process(pkt(seq, {"target": 21.5})) for seq in (2, 3)]
    assert all(isinstance(out, StreamPacket) for out in outputs)
    assert [out.payload for out in outputs if isinstance(out, StreamPacket)] == [
        {"u": 3.0, "target": 21.5, "error": 1.5}
    ] * 2
    assert [(out.source_id, out.seq) for out in outputs if isinstance(out, StreamPacket)] == [
        ("ctl", 0),
        ("ctl", 1),
    ]


def test_pid_state_changes_only_on_set_points_not_on_measurements() -> None:
    options = {"kp": 1.0, "ki": 1.0, "kd": 0.5, "dt_s": 0.1}
    busy, quiet = make(Pid, **options), make(Pid, **options)
    for value in (1.0, 5.0, -3.0, 8.0):
        busy.process(pkt(0, {"value": value}))
    quiet.process(pkt(0, {"value": 8.0}))
    for target in (10.0, 12.0):
        out_busy, out_quiet = (p.process(pkt(0, {"target": target})) for p in (busy, quiet))
        assert isinstance(out_busy, StreamPacket) and isinstance(out_quiet, StreamPacket)
        assert out_busy.payload == out_quiet.payload


def test_pid_refuses_a_set_point_before_any_measurement() -> None:
    with pytest.raises(ValueError, match="before any measurement"):
        make(Pid).process(pkt(0, {"target": 21.5}))


@pytest.mark.parametrize("initial", [15.0, 30.0])
def test_plant_moves_towards_gain_times_u_plus_ambient(initial: float) -> None:
    plant = make(SimulatedPlant, initial=initial, ambient=15.0, gain=2.0, tau_s=2.0, dt_s=0.1)
    settle = 2.0 * 3.25 + 15.0  # 21.5
    distance = abs(initial - settle)
    for seq in range(400):
        out = plant.process(pkt(seq, {"u": 3.25, "target": 21.5}))
        assert out.payload["u"] == 3.25 and out.payload["target"] == 21.5
        now = abs(out.payload["value"] - settle)
        assert now < distance  # strictly closer every step, never overshooting
        assert (out.payload["value"] - settle) * (initial - settle) > 0
        distance = now
    assert distance < 1e-6


def test_pid_and_plant_of_the_feedback_graph_converge_to_the_set_point() -> None:
    nodes = {node["id"]: node for node in yaml.safe_load(FEEDBACK.read_text())["nodes"]}
    setpoints = make(Synthetic, "setpoint", **nodes["setpoint"]["config"])
    pid = make(Pid, "controller", **nodes["controller"]["config"])
    plant = make(SimulatedPlant, "plant", **nodes["plant"]["config"])
    loop = make(DelayPlugin, "loop", **nodes["loop"]["config"])
    for packet in loop.initial_packets():
        assert pid.process(packet) is None
    values: list[float] = []
    for setpoint in setpoints.packets():
        control = pid.process(setpoint)
        assert isinstance(control, StreamPacket)
        reading = plant.process(control)
        values.append(reading.payload["value"])
        fed_back = loop.process(reading)
        assert isinstance(fed_back, StreamPacket)
        assert fed_back is reading
        assert pid.process(fed_back) is None  # a measurement: no output
    assert len(values) == 200
    assert values[-1] == pytest.approx(21.5, abs=0.01)
