"""The nats source against a real nats-server: packets keep the publisher's key, a message is
acknowledged only once safe downstream, and three worker processes sharing one consumer
deliver every message although one of them is killed with `kill -9` mid-stream."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.logged_run import LoggedRun, next_log
from tests.runtime.harness import HEADER, graph_from, run, steer
from tests.transports.nats_server import HANG_GUARD_S, NatsServer, nats_server_binary

if TYPE_CHECKING:
    from nats.js.api import ConsumerInfo

pytestmark = pytest.mark.skipif(nats_server_binary() is None, reason="no nats-server")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    with NatsServer(tmp_path / "nats") as running:
        running.add_stream("EVENTS", ["events.>"])
        yield running


def publish(server: NatsServer, tmp_path: Path, count: int) -> None:
    """`count` packets into EVENTS through the nats sink (keys `pub:<n>`)."""
    body = f"""
nodes:
  - {{id: pub, kind: source, plugin: synthetic, config: {{count: {count}}}}}
  - id: out
    kind: sink
    plugin: nats
    config: {{url: "{server.url}", subject: events.pub}}
edges:
  - {{from: pub, to: out}}
"""
    report = run(graph_from(tmp_path / "publisher", body), tmp_path / "publisher")
    assert report["totals"]["delivered"] == count


def worker(url: str, output: str, options: str = "") -> str:
    return f"""
nodes:
  - id: src
    kind: source
    plugin: nats
    config: {{url: "{url}", stream: EVENTS, consumer: workers{options}}}
  - {{id: out, kind: sink, plugin: jsonl, config: {{path: {output}}}}}
edges:
  - {{from: src, to: out}}
"""


def consumer_of_workers(server: NatsServer) -> ConsumerInfo | None:
    """Consumer `workers` of EVENTS as the server sees it; None before a worker made it."""

    async def ask() -> ConsumerInfo | None:
        import nats
        import nats.js.errors

        nc = await nats.connect(server.url)
        try:
            return await nc.jetstream().consumer_info("EVENTS", "workers")
        except nats.js.errors.NotFoundError:
            return None
        finally:
            await nc.close()

    return asyncio.run(ask())


def consumer_state(server: NatsServer) -> tuple[int, int]:
    """(messages waiting, messages delivered and not acknowledged) of consumer `workers`."""
    info = consumer_of_workers(server)
    assert info is not None, "no consumer `workers`"
    return int(info.num_pending or 0), int(info.num_ack_pending or 0)


def pulls_waiting(server: NatsServer) -> int:
    """How many pull requests wait at consumer `workers`: one per idle worker."""
    info = consumer_of_workers(server)
    return 0 if info is None else int(info.num_waiting or 0)


def keys_in(path: Path) -> Counter[str]:
    if not path.exists():
        return Counter()
    packets = [json.loads(line) for line in path.read_text().splitlines() if line]
    return Counter(
        p["meta"].get("idempotency_key") or f"{p['source_id']}:{p['seq']}" for p in packets
    )


def test_packets_keep_the_publishers_key_and_are_acked_once_written(
    tmp_path: Path, server: NatsServer
) -> None:
    (tmp_path / "publisher").mkdir()
    publish(server, tmp_path, 300)
    (tmp_path / "w").mkdir()
    g = graph_from(tmp_path / "w", worker(server.url, "out.jsonl"))
    report = run(g, tmp_path / "w", max_packets=300)
    assert report["totals"]["delivered"] == 300
    assert keys_in(tmp_path / "w" / "out.jsonl") == {f"pub:{n}": 1 for n in range(300)}
    assert consumer_state(server) == (0, 0)  # every message acknowledged, none waiting
    assert report["nodes"]["src"]["plugin_stats"] == {"acked": 300, "held": 0}


HOSTILE = (
    b"\xff not json",
    b'{"t": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # was a RecursionError out of the source
    b'{"t": ' + b"7" * 5000 + b"}",  # over Python's 4300 digits: was a ValueError out of it
)


def test_a_message_that_is_not_json_goes_to_on_error_and_is_acked(
    tmp_path: Path, server: NatsServer
) -> None:
    async def send() -> None:
        import nats

        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await js.publish("events.raw", b'{"t": 1}', headers={"Nats-Msg-Id": "raw-1"})
        for payload in HOSTILE:
            await js.publish("events.raw", payload)
        await js.publish("events.raw", b'{"t": 3}')
        await nc.close()

    asyncio.run(send())
    g = graph_from(tmp_path, worker(server.url, "out.jsonl"))
    report = run(g, tmp_path, max_packets=2, drain_timeout_s=5)
    assert report["nodes"]["src"]["errors"] == len(HOSTILE)
    reasons = [e["message"] for e in report["nodes"]["src"]["recent_errors"]]
    assert "nested too deep" in reasons[1] and "4300 digits" in reasons[2], reasons
    written = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [p["payload"]["t"] for p in written] == [1, 3]
    assert [p["meta"]["idempotency_key"] for p in written] == ["raw-1", "EVENTS:5"]
    assert consumer_state(server) == (0, 0)


def add_consumer(server: NatsServer, **config: Any) -> None:
    """Consumer `workers` of EVENTS as someone else made it (`config`: ConsumerConfig's)."""

    async def add() -> None:
        import nats
        from nats.js.api import AckPolicy, ConsumerConfig

        nc = await nats.connect(server.url)
        try:
            options = {"ack_policy": AckPolicy.EXPLICIT, **config}
            await nc.jetstream().add_consumer("EVENTS", ConsumerConfig("workers", **options))
        finally:
            await nc.close()

    asyncio.run(add())


@pytest.mark.parametrize(
    ("config", "said"),
    [
        (
            {"filter_subject": "events.other"},
            "consumes events.other, the graph asks for every subject of the stream",
        ),
        ({"ack_policy": "none"}, "acknowledges with policy 'none'; this source needs 'explicit'"),
        ({"ack_policy": "all"}, "acknowledges with policy 'all'"),
        ({"deliver_subject": "pushed.here"}, "is a push consumer; this source pulls"),
    ],
    ids=["another-subject", "ack-none", "ack-all", "push"],
)
def test_an_existing_consumer_unfit_for_the_graph_ends_the_source_saying_what_to_do(
    tmp_path: Path, server: NatsServer, config: dict[str, Any], said: str
) -> None:
    """It was used as it was: one filtering another subject consumed that one instead, one
    with `ack_policy: none` counted each message done once sent (a crash lost it)."""
    add_consumer(server, **config)
    report = run(graph_from(tmp_path, worker(server.url, "out.jsonl")), tmp_path)
    assert report["status"] == "degraded"  # the source ended with an error (`on_error`)
    errors = [e["message"] for e in report["nodes"]["src"]["recent_errors"]]
    assert len(errors) == 1 and said in errors[0], errors
    assert "nats consumer rm EVENTS workers" in errors[0]


def start_worker(graph: Path, state: Path) -> LoggedRun:
    """`schnitzel run`, its log in `run-<n>.log` beside the graph, never a pipe."""
    return LoggedRun(
        [sys.executable, "-m", "schnitzel.cli.main", "run", str(graph), "--state-dir", str(state)],
        log=next_log(graph.parent),
        cwd=graph.parent,
    )


@pytest.mark.slow  # three real worker processes, one killed with kill -9
def test_three_workers_share_a_stream_and_a_kill_9_loses_nothing(
    tmp_path: Path, server: NatsServer
) -> None:
    count = 3000
    workers: list[tuple[LoggedRun, Path]] = []
    for n in range(3):
        folder = tmp_path / f"worker{n}"
        folder.mkdir()
        graph = folder / "graph.yaml"
        options = ", batch: 8, ack_wait_s: 2.0"
        graph.write_text(HEADER + worker(server.url, "out.jsonl", options))
        workers.append((start_worker(graph, folder / "state"), folder / "out.jsonl"))

    def delivered() -> Counter[str]:
        total: Counter[str] = Counter()
        for _process, output in workers:
            total += keys_in(output)
        return total

    def until(condition: Any, what: str) -> None:
        started = time.monotonic()
        while not condition():
            assert time.monotonic() - started < 3 * HANG_GUARD_S, f"never happened: {what}"
            time.sleep(0.05)

    # Every worker pulls before anything is published, so the server hands messages to all
    # three: published first, the workers started first (on a busy machine, all but one)
    # could take every message before the others asked.
    until(lambda: pulls_waiting(server) >= 3, "all three workers pulling")
    (tmp_path / "publisher").mkdir()
    publish(server, tmp_path, count)
    victim, victim_output = workers[0]
    until(lambda: keys_in(victim_output), "the first worker wrote")
    victim.send_signal(signal.SIGKILL)
    victim.wait(HANG_GUARD_S)
    until(lambda: set(delivered()) >= {f"pub:{n}" for n in range(count)}, "every key written")
    until(lambda: consumer_state(server) == (0, 0), "every message acknowledged")
    for process, _output in workers[1:]:
        process.send_signal(signal.SIGTERM)
        assert process.finish(HANG_GUARD_S) == 0, process.log_tail()
    counts = delivered()
    per_worker = [sum(keys_in(output).values()) for _process, output in workers]
    duplicates = sum(n - 1 for n in counts.values())
    print(f"written per worker {per_worker}: {duplicates} duplicates of {count}")
    assert set(counts) == {f"pub:{n}" for n in range(count)}
    assert all(written > 0 for written in per_worker)  # the work was shared


def test_a_message_delivered_max_deliver_times_goes_to_on_error_and_is_acked(
    tmp_path: Path, server: NatsServer
) -> None:
    async def crash_on_it() -> None:
        """A worker that takes the first message and dies without acknowledging it."""
        import nats
        from nats.js.api import AckPolicy, ConsumerConfig

        nc = await nats.connect(server.url)
        js = nc.jetstream()
        config = ConsumerConfig(
            durable_name="workers", ack_policy=AckPolicy.EXPLICIT, ack_wait=1.0, max_deliver=2
        )
        await js.add_consumer("EVENTS", config)
        await js.publish("events.x", b'{"t": "poison"}', headers={"Nats-Msg-Id": "poison"})
        taken = await js.pull_subscribe_bind(durable="workers", stream="EVENTS")
        assert [m.data for m in await taken.fetch(1, timeout=10)] == [b'{"t": "poison"}']
        await js.publish("events.x", b'{"t": "fine"}', headers={"Nats-Msg-Id": "fine"})
        await nc.close()

    asyncio.run(crash_on_it())

    async def steps(runtime: Any, _control: Any) -> None:
        started = time.monotonic()
        node = runtime.nodes["src"]
        while node.metrics.errors < 1 or not (tmp_path / "out.jsonl").exists():
            assert time.monotonic() - started < HANG_GUARD_S, (
                f"the poison never came back: {node.metrics.errors} errors, "
                f"{runtime.nodes['out'].metrics.delivered} written"
            )
            await asyncio.sleep(0.05)

    report = steer(graph_from(tmp_path, worker(server.url, "out.jsonl")), tmp_path / "s", steps)
    assert report["nodes"]["src"]["errors"] == 1  # the second delivery: max_deliver reached
    written = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [p["payload"]["t"] for p in written] == ["fine"]
    assert consumer_state(server) == (0, 0)


def test_an_idle_stream_keeps_the_source_waiting_without_errors(
    tmp_path: Path, server: NatsServer
) -> None:
    g = graph_from(tmp_path, worker(server.url, "out.jsonl", ", fetch_timeout_s: 0.1"))
    report = run(g, tmp_path, duration_s=1.0)  # ten empty fetches or so: each times out
    assert report["status"] == "ok" and report["nodes"]["src"]["errors"] == 0, report["nodes"]
