"""The http sink against a real HTTP server on 127.0.0.1 (tests/http_backend.py): delivery,
retries, Retry-After, outages, the circuit breaker, batches, the token and TLS."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
from collections import Counter
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pydantic import ValidationError

from schnitzel import BreakerState
from schnitzel.contract.codec import packet_to_dict
from schnitzel.contract.packet import StreamPacket
from schnitzel.registry.plugin import CheckContext, NodeContext
from schnitzel.runtime import Runtime
from schnitzel.validate import load_graph, validate_text
from schnitzel_plugins.http.errors import HttpGaveUp, HttpRejected, HttpSinkError
from schnitzel_plugins.http.sink import HttpBatchSink, HttpSink, HttpSinkConfig, batch_key
from schnitzel_plugins.io.jsonl_files import identify
from tests.certificates import self_signed_certificate
from tests.http_backend import LoopbackBackend, Received

T = TypeVar("T")
TOKEN = "s3cr3t-t0ken-value"
# Short waits everywhere: the behaviour is the same, the suite stays fast.
FAST = {"retry_initial_s": 0.01, "retry_max_s": 0.05}


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coroutine, 120))  # against a hang only


def make_sink(url: str, tmp_path: Path, durable: bool = False, **options: Any) -> HttpSink:
    context = NodeContext(
        "out", tmp_path, tmp_path / "state", logging.getLogger("schnitzel.test.out"), durable
    )
    return HttpSink(HttpSinkConfig(url=url, **{**FAST, **options}), context)


def packet(seq: int, source_id: str = "cam", **meta: Any) -> StreamPacket:
    return StreamPacket.new("sensor", source_id, seq, {"v": seq}, meta or None)


async def deliver_all(sink: HttpSink, packets: list[StreamPacket]) -> None:
    await sink.open()
    try:
        for each in packets:
            await sink.deliver(each)
    finally:
        await sink.close()


async def until(condition: Any, timeout: float = 60.0) -> None:
    """Poll a condition the sink exposes (no event to wait on) every few milliseconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def gaps(requests: list[Received]) -> list[float]:
    return [b.at - a.at for a, b in itertools.pairwise(requests)]


# -- delivery ------------------------------------------------------------------------------


def test_each_packet_is_posted_as_json_with_its_key_and_the_bearer_token(
    loopback_backend: LoopbackBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPLINK_TOKEN", TOKEN)
    sink = make_sink(
        loopback_backend.url, tmp_path, token_env="UPLINK_TOKEN", headers={"X-Site": "lab"}
    )
    packets = [packet(0), packet(1, idempotency_key="reading-77")]
    run(deliver_all(sink, packets))

    got = loopback_backend.requests
    assert [r.key for r in got] == ["cam:0", "reading-77"]
    assert [r.body for r in got] == [json.loads(json.dumps(packet_to_dict(p))) for p in packets]
    headers = got[0].headers
    assert headers["content-type"] == "application/json"
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert headers["x-site"] == "lab"
    assert got[0].path == "/ingest"


def test_a_key_that_cannot_be_a_header_is_an_error_on_that_packet(
    loopback_backend: LoopbackBackend, tmp_path: Path
) -> None:
    sink = make_sink(loopback_backend.url, tmp_path)
    with pytest.raises(HttpSinkError, match="printable ASCII"):
        run(deliver_all(sink, [packet(0, idempotency_key="café:1")]))
    assert loopback_backend.requests == []


def test_batch_max_1_posts_one_packet_per_request_even_for_a_batch(
    loopback_backend: LoopbackBackend, tmp_path: Path
) -> None:
    sink = make_sink(loopback_backend.url, tmp_path)
    assert type(sink) is HttpSink

    async def scenario() -> None:
        await sink.open()
        try:
            await sink.deliver_batch([packet(i) for i in range(3)])
        finally:
            await sink.close()

    run(scenario())
    assert [(r.key, isinstance(r.body, dict)) for r in loopback_backend.requests] == [
        (f"cam:{i}", True) for i in range(3)
    ]


# -- retries -------------------------------------------------------------------------------


def test_a_5xx_is_retried_until_the_backend_accepts(
    loopback_backend: LoopbackBackend, tmp_path: Path
) -> None:
    loopback_backend.fail_next(1, status=500)
    run(deliver_all(make_sink(loopback_backend.url, tmp_path), [packet(0)]))
    assert [(r.key, r.status) for r in loopback_backend.requests] == [
        ("cam:0", 500),
        ("cam:0", 200),
    ]


@pytest.mark.parametrize("status", [408, 429, 502, 503])
def test_throttling_and_timeouts_from_the_backend_are_retried(
    loopback_backend: LoopbackBackend, tmp_path: Path, status: int
) -> None:
    loopback_backend.fail_next(2, status=status)
    run(deliver_all(make_sink(loopback_backend.url, tmp_path), [packet(0)]))
    assert [r.status for r in loopback_backend.requests] == [status, status, 200]


def test_429_with_retry_after_waits_at_least_that_long(
    loopback_backend: LoopbackBackend, tmp_path: Path
) -> None:
    loopback_backend.fail_next(1, status=429, retry_after=1)
    sink = make_sink(loopback_backend.url, tmp_path, retry_max_s=5.0)
    run(deliver_all(sink, [packet(0)]))
    requests = loopback_backend.requests
    assert [r.status for r in requests] == [429, 200]
    assert gaps(requests)[0] >= 1.0


def test_retry_after_is_capped_at_retry_max_s(
    loopback_backend: LoopbackBackend, tmp_path: Path
) -> None:
    loopback_backend.fail_next(1, status=503, retry_after=3600)
    run(deliver_all(make_sink(loopback_backend.url, tmp_path), [packet(0)]))  # not an hour
    assert [r.status for r in loopback_backend.requests] == [503, 200]


def test_a_4xx_right_after_an_acceptance_fails_at_once_with_the_status_and_the_body(
    loopback_backend: LoopbackBackend, tmp_path: Path
) -> None:
    loopback_backend.reject_if(
        lambda r: r.key == "cam:1", status=400, body="field 'v' must be a string\n" + "x" * 5000
    )
    sink = make_sink(loopback_backend.url, tmp_path, durable=True)
    with pytest.raises(HttpRejected) as caught:
        run(deliver_all(sink, [packet(0), packet(1)]))
    assert caught.value.status == 400
    message = str(caught.value)
    assert "HTTP 400" in message and "field 'v' must be a string" in message
    assert "poison pill" in message
    assert len(message) < 700  # an excerpt, not the whole body
    # not retried, even with a durable inbox: the backend took cam:0 right before
    assert [(r.key, r.status) for r in loopback_backend.requests] == [
        ("cam:0", 200),
        ("cam:1", 400),
    ]


def test_without_a_durable_inbox_the_sink_gives_up_after_max_retries(
    loopback_backend: LoopbackBackend, tmp_path: Path
) -> None:
    loopback_backend.stop()
    sink = make_sink(loopback_backend.url, tmp_path, max_retries=2, breaker_failures=10)
    with pytest.raises(HttpGaveUp) as caught:
        run(deliver_all(sink, [packet(0)]))
    assert caught.value.attempts == 3
    message = str(caught.value)
    assert "after 3 attempts (max_retries 2)" in message
    assert "connection refused" in message and "durable inbox" in message


def test_a_request_that_times_out_is_retried(
    loopback_backend: LoopbackBackend, tmp_path: Path
) -> None:
    loopback_backend.set_delay(0.5)
    sink = make_sink(loopback_backend.url, tmp_path, timeout_s=0.1, max_retries=1)
    with pytest.raises(HttpGaveUp, match=r"no (complete )?answer within 0\.1 s \(timeout_s"):
        run(deliver_all(sink, [packet(0)]))
    assert [r.key for r in loopback_backend.requests] == ["cam:0", "cam:0"]


def test_with_a_durable_inbox_delivery_survives_the_backend_going_down(
    loopback_backend: LoopbackBackend, tmp_path: Path
) -> None:
    port = loopback_backend.port
    sink = make_sink(
        loopback_backend.url,
        tmp_path,
        durable=True,
        max_retries=0,  # ignored: the inbox is durable
        breaker_failures=3,
        breaker_cooldown_s=0.05,
        retry_max_s=0.2,
    )

    async def scenario() -> None:
        await sink.open()
        try:
            await sink.deliver(packet(0))  # the pool now holds a keep-alive connection
            loopback_backend.stop()
            delivery = asyncio.create_task(sink.deliver(packet(1)))
            await until(lambda: sink.breaker.state is not BreakerState.CLOSED)
            assert not delivery.done()  # still trying, not failed
            loopback_backend.start()
            await delivery
        finally:
            await sink.close()

    run(scenario())
    assert loopback_backend.port == port
    assert loopback_backend.count_by_key() == {"cam:0": 1, "cam:1": 1}
    assert sink.breaker.state is BreakerState.CLOSED


# -- circuit breaker -----------------------------------------------------------------------


def test_an_open_circuit_sends_nothing_until_its_cooldown_then_one_probe(
    loopback_backend: LoopbackBackend, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    loopback_backend.fail_next(3, status=503)
    sink = make_sink(
        loopback_backend.url,
        tmp_path,
        durable=True,
        breaker_failures=2,
        breaker_cooldown_s=0.3,
        retry_initial_s=0.01,
        retry_max_s=0.5,
    )
    with caplog.at_level(logging.DEBUG, logger="schnitzel.test"):
        run(deliver_all(sink, [packet(0)]))

    requests = loopback_backend.requests
    assert [r.status for r in requests] == [503, 503, 503, 200]
    # opened after the 2nd failure: nothing for 0.3 s; the probe (3rd) failed: 0.5 s (0.6 capped)
    assert gaps(requests)[1] >= 0.3
    assert gaps(requests)[2] >= 0.5
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    closed = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(warnings) == 1 and "circuit open" in warnings[0].getMessage()
    assert "failed 2 times in a row" in warnings[0].getMessage()
    assert len(closed) == 1 and "circuit closed" in closed[0].getMessage()


def test_deliveries_wait_while_the_circuit_is_open(
    loopback_backend: LoopbackBackend, tmp_path: Path
) -> None:
    loopback_backend.fail_next(1, status=503)
    sink = make_sink(
        loopback_backend.url, tmp_path, durable=True, breaker_failures=1, breaker_cooldown_s=0.3
    )

    async def scenario() -> None:
        await sink.open()
        try:
            first = asyncio.create_task(sink.deliver(packet(0)))
            await until(lambda: sink.breaker.state is BreakerState.OPEN)
            second = asyncio.create_task(sink.deliver(packet(1)))
            await asyncio.gather(first, second)
        finally:
            await sink.close()

    run(scenario())
    failed, *after = loopback_backend.requests
    assert failed.status == 503
    assert sorted(r.key for r in after) == ["cam:0", "cam:1"]
    assert all(r.at - failed.at >= 0.3 for r in after)  # both waited out the cooldown


# -- batches -------------------------------------------------------------------------------


def test_batches_go_as_json_arrays_of_at_most_batch_max(
    loopback_backend: LoopbackBackend, tmp_path: Path
) -> None:
    sink = make_sink(loopback_backend.url, tmp_path, batch_max=4)
    assert isinstance(sink, HttpBatchSink)
    packets = [packet(i) for i in range(10)]

    async def scenario() -> None:
        await sink.open()
        try:
            await sink.deliver_batch(packets)
        finally:
            await sink.close()

    run(scenario())
    requests = loopback_backend.requests
    assert [len(r.body) for r in requests] == [4, 4, 2]
    members = [[f"cam:{p['seq']}" for p in r.body] for r in requests]
    assert members == [[f"cam:{i}" for i in range(a, min(a + 4, 10))] for a in (0, 4, 8)]
    assert [r.key for r in requests] == [batch_key(m) for m in members]


def test_the_batch_key_is_a_deterministic_digest_of_the_member_keys() -> None:
    key = batch_key(["cam:0", "cam:1"])
    assert key == batch_key(["cam:0", "cam:1"])
    assert key.startswith("batch-") and len(key) == len("batch-") + 64
    assert key not in {batch_key(["cam:1", "cam:0"]), batch_key(["cam:0,cam:1"])}


def test_a_refused_batch_is_sent_again_as_single_packets_inside_the_sink(
    loopback_backend: LoopbackBackend, tmp_path: Path
) -> None:
    loopback_backend.fail_next(1, status=422)  # the batch, not any packet in it
    sink = make_sink(loopback_backend.url, tmp_path, batch_max=8, durable=True)

    async def scenario() -> None:
        await sink.open()
        try:
            await sink.deliver_batch([packet(i) for i in range(3)])
        finally:
            await sink.close()

    run(scenario())  # every packet went through alone: nothing raised
    requests = loopback_backend.requests
    assert [r.status for r in requests] == [422, 200, 200, 200]
    assert [r.key for r in requests[1:]] == ["cam:0", "cam:1", "cam:2"]
    assert all(isinstance(r.body, dict) for r in requests[1:])


# -- token and TLS -------------------------------------------------------------------------


def test_the_token_never_reaches_logs_errors_or_reprs(
    loopback_backend: LoopbackBackend,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("UPLINK_TOKEN", TOKEN)
    echo = f"you sent Authorization: Bearer {TOKEN}"
    loopback_backend.fail_next(2, status=503, body=echo)  # opens the circuit, logs the reply
    loopback_backend.reject_if(lambda r: r.key == "cam:1", status=422, body=echo)
    sink = make_sink(
        loopback_backend.url,
        tmp_path,
        token_env="UPLINK_TOKEN",
        breaker_failures=1,
        breaker_cooldown_s=0.01,
    )
    with caplog.at_level(logging.DEBUG), pytest.raises(HttpRejected) as caught:
        run(deliver_all(sink, [packet(0), packet(1)]))

    assert loopback_backend.requests[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert "you sent Authorization: Bearer [token]" in str(caught.value)
    assert "circuit open" in caplog.text and "[token]" in caplog.text
    shown = [caplog.text, str(caught.value), repr(caught.value), repr(sink), repr(sink.config)]
    assert all(TOKEN not in text for text in shown)


def test_an_unset_token_variable_stops_the_node_at_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("UPLINK_TOKEN", raising=False)
    sink = make_sink("http://127.0.0.1:9/x", tmp_path, token_env="UPLINK_TOKEN")
    with pytest.raises(HttpSinkError, match=r"environment variable UPLINK_TOKEN .* is unset"):
        run(sink.open())
    monkeypatch.setenv("UPLINK_TOKEN", "")
    with pytest.raises(HttpSinkError, match=r"UPLINK_TOKEN .* is empty"):
        run(sink.open())


def test_validation_warns_when_the_token_variable_is_not_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("UPLINK_TOKEN", raising=False)
    config = HttpSinkConfig(url="http://127.0.0.1:9/x", token_env="UPLINK_TOKEN")
    problems = HttpSink.check_environment(config, CheckContext(tmp_path))
    assert [(p.severity, p.config_key) for p in problems] == [("warning", "token_env")]
    assert "UPLINK_TOKEN" in problems[0].message
    graph = (
        "version: 2\nnodes:\n  - {id: s, kind: source, plugin: synthetic, config: {count: 1}}\n"
        "  - {id: out, kind: sink, plugin: http, config: {url: 'http://127.0.0.1:9/x', "
        "token_env: UPLINK_TOKEN}}\nedges: [{from: s, to: out}]\n"
    )
    report = validate_text(graph).report
    assert report.errors == [] and [p.code for p in report.problems] == ["environment"]
    monkeypatch.setenv("UPLINK_TOKEN", TOKEN)
    assert HttpSink.check_environment(config, CheckContext(tmp_path)) == []


def test_tls_certificates_are_verified_by_default() -> None:
    assert HttpSinkConfig(url="https://example.org/x").verify_tls is True


@pytest.fixture
def tls_backend(tmp_path: Path) -> Any:
    cert, key = self_signed_certificate(tmp_path)
    with LoopbackBackend(tls=(cert, key)) as backend:
        yield backend


def test_an_untrusted_certificate_is_refused_and_a_private_ca_is_trusted(
    tls_backend: LoopbackBackend, tmp_path: Path
) -> None:
    with pytest.raises(HttpGaveUp, match="CERTIFICATE_VERIFY_FAILED"):
        run(deliver_all(make_sink(tls_backend.url, tmp_path, max_retries=0), [packet(0)]))
    assert tls_backend.requests == []
    run(deliver_all(make_sink(tls_backend.url, tmp_path, ca_file="cert.pem"), [packet(1)]))
    run(deliver_all(make_sink(tls_backend.url, tmp_path, verify_tls=False), [packet(2)]))
    assert tls_backend.keys() == ["cam:1", "cam:2"]


def test_a_missing_ca_file_is_an_environment_error_and_stops_the_node_at_open(
    tmp_path: Path,
) -> None:
    config = HttpSinkConfig(url="https://127.0.0.1:9/x", ca_file="nope.pem")
    problems = HttpSink.check_environment(config, CheckContext(tmp_path))
    assert [(p.severity, p.config_key) for p in problems] == [("error", "ca_file")]
    sink = make_sink("https://127.0.0.1:9/x", tmp_path, ca_file="nope.pem")
    with pytest.raises(HttpSinkError, match=r"cannot load the CA file .*nope\.pem"):
        run(sink.open())


# -- config --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"retries": 3}, "Extra inputs are not permitted"),
        ({"batch_max": 0}, "greater than or equal to 1"),
        ({"max_retries": -1}, "greater than or equal to 0"),
        ({"retry_initial_s": 0}, "greater than 0"),
        ({"breaker_failures": True}, "valid integer"),
        ({"retry_initial_s": 5.0, "retry_max_s": 1.0}, "retry_initial_s (5.0) is above"),
        ({"ca_file": "ca.pem", "verify_tls": False}, "ca_file is set but verify_tls is false"),
        ({"headers": {"Idempotency-Key": "x"}}, "set by the sink itself"),
        ({"headers": {"bad name": "x"}}, "not a valid HTTP header name"),
        ({"headers": {"X-A": "a\r\nX-B: b"}}, "printable ASCII"),
        (
            {"headers": {"Authorization": "Basic x"}, "token_env": "T"},
            "Authorization header and token_env",
        ),
    ],
)
def test_the_config_is_strict(options: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValidationError) as caught:
        HttpSinkConfig(url="http://127.0.0.1:9/x", **options)
    assert complaint in str(caught.value)


def test_the_config_repr_hides_header_values() -> None:
    config = HttpSinkConfig(url="http://127.0.0.1:9/x", headers={"X-Api-Key": "hunter2"})
    assert "hunter2" not in repr(config)


def test_logs_and_errors_show_the_url_without_credentials(tmp_path: Path) -> None:
    sink = make_sink("http://user:pw@127.0.0.1:9/x?key=abc", tmp_path)
    assert repr(sink) == "<HttpSink node='out' url='http://127.0.0.1:9/x?…'>"


# -- through the runtime -------------------------------------------------------------------


@pytest.mark.parametrize("batch_max", [1, 16])
def test_a_graph_run_delivers_every_key_exactly_once(
    loopback_backend: LoopbackBackend, tmp_path: Path, batch_max: int
) -> None:
    count = 300
    loopback_backend.fail_next(3, status=503)  # a hiccup at the start changes nothing
    path = tmp_path / "uplink.yaml"
    path.write_text(
        "version: 2\nnodes:\n"
        f"  - {{id: src, kind: source, plugin: synthetic, config: {{count: {count}}}}}\n"
        "  - id: out\n    kind: sink\n    plugin: http\n"
        f"    config: {{url: '{loopback_backend.url}', batch_max: {batch_max}, "
        "retry_initial_s: 0.01, retry_max_s: 0.05}\n"
        "edges: [{from: src, to: out}]\n"
    )
    report = run(Runtime(load_graph(path), state_dir=tmp_path / "state").run())

    assert report["totals"]["delivered"] == count and report["totals"]["errors"] == 0
    delivered = Counter(f"{p['source_id']}:{p['seq']}" for p in loopback_backend.packets())
    assert delivered == Counter({f"src:{i}": 1 for i in range(count)})
    if batch_max == 1:
        assert loopback_backend.count_by_key() == delivered
    else:
        assert all(len(r.body) <= batch_max for r in loopback_backend.accepted())


def test_a_packet_the_backend_rejects_inside_a_batch_fails_alone(
    loopback_backend: LoopbackBackend, tmp_path: Path
) -> None:
    count = 40
    loopback_backend.reject_if(
        lambda r: any(p.get("seq") == 5 for p in r.packets), status=422, body="seq 5 is bad"
    )
    path = tmp_path / "uplink.yaml"
    path.write_text(
        "version: 2\nnodes:\n"
        f"  - {{id: src, kind: source, plugin: synthetic, config: {{count: {count}}}}}\n"
        "  - id: out\n    kind: sink\n    plugin: http\n"
        f"    config: {{url: '{loopback_backend.url}', batch_max: 8}}\n"
        "edges: [{from: src, to: out}]\n"
    )
    report = run(Runtime(load_graph(path), state_dir=tmp_path / "state").run())

    out = report["nodes"]["out"]
    assert (out["errors"], report["totals"]["delivered"]) == (1, count - 1)
    assert "HTTP 422" in out["recent_errors"][0]["message"]
    assert "seq 5 is bad" in out["recent_errors"][0]["message"]
    delivered = {f"{p['source_id']}:{p['seq']}" for p in loopback_backend.packets()}
    assert delivered == {f"src:{i}" for i in range(count)} - {"src:5"}
    single = [r for r in loopback_backend.requests if not isinstance(r.body, list)]
    assert single, "the runtime fell back to one packet per request"


def uplink_graph(tmp_path: Path, url: str, count: int) -> Path:
    """`jsonl` readings -> `http` through a durable inbox, as graphs/uplink.yaml."""
    lines = "".join(json.dumps({"reading": i}) + "\n" for i in range(count))
    (tmp_path / "readings.jsonl").write_text(lines)
    path = tmp_path / "uplink.yaml"
    path.write_text(
        "version: 2\nnodes:\n"
        "  - {id: readings, kind: source, plugin: jsonl, config: {path: readings.jsonl}}\n"
        "  - id: out\n    kind: sink\n    plugin: http\n"
        f"    config: {{url: '{url}', retry_initial_s: 0.01, retry_max_s: 0.1, "
        "breaker_failures: 3, breaker_cooldown_s: 0.05}\n"
        "    inbox: {durable: {path: state/out.db}}\n"
        "edges: [{from: readings, to: out}]\n"
    )
    return path


def line_keys(path: Path, count: int) -> dict[str, int]:
    """Each line's key once: `readings:<file id>:<line>` (docs/contracts/delivery.md)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        file_id = identify(fd)
    finally:
        os.close(fd)
    assert file_id is not None
    return {f"readings:{file_id.key}:{i}": 1 for i in range(count)}


def test_with_a_durable_inbox_an_outage_during_a_run_loses_and_duplicates_nothing(
    loopback_backend: LoopbackBackend, tmp_path: Path
) -> None:
    count = 100
    loopback_backend.stop()
    runtime = Runtime(load_graph(uplink_graph(tmp_path, loopback_backend.url, count)))

    async def scenario() -> dict[str, Any]:
        run_task = asyncio.create_task(runtime.run())
        sink = runtime.nodes["out"].plugin
        assert isinstance(sink, HttpSink) and sink.context.durable
        await until(lambda: sink.breaker.state is not BreakerState.CLOSED)
        loopback_backend.start()
        return await run_task

    report = run(scenario())
    assert report["totals"]["delivered"] == count and report["totals"]["errors"] == 0
    delivered = Counter(p["payload"]["reading"] for p in loopback_backend.packets())
    assert delivered == Counter(range(count))
    assert loopback_backend.count_by_key() == line_keys(tmp_path / "readings.jsonl", count)


def test_a_backlog_kept_while_the_backend_was_down_is_delivered_by_the_next_run(
    loopback_backend: LoopbackBackend, tmp_path: Path
) -> None:
    count = 50
    loopback_backend.stop()
    path = uplink_graph(tmp_path, loopback_backend.url, count)
    # A run waits for its durable backlog; a stop (here: every packet made) gives up on it once it
    # made no progress for a while, and the packets stay in the store.
    first = run(Runtime(load_graph(path), state_dir=tmp_path / "state").run(max_packets=count))
    assert first["totals"]["delivered"] == 0 and first["totals"]["errors"] == 0
    kept = first["nodes"]["out"]["durable"]
    assert kept["backlog"] == kept["accepted"] > 0 and kept["settled"] == 0

    loopback_backend.start()
    second = run(Runtime(load_graph(path), state_dir=tmp_path / "state").run())
    assert second["totals"]["delivered"] == count and second["totals"]["errors"] == 0
    assert loopback_backend.count_by_key() == line_keys(tmp_path / "readings.jsonl", count)
