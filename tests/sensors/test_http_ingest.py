"""`http_ingest` under a real httpx client, inside a real runtime: 202 only once the records
are safe, 503/429 with Retry-After under backpressure, refusals that say why, TLS."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from schnitzel import Runtime, RuntimeControl
from schnitzel.runtime import checkpoints
from schnitzel_plugins.sensors.http_ingest import HttpIngest
from tests.certificates import self_signed_certificate, trusting
from tests.runtime import plugins
from tests.runtime.harness import assert_counts_add_up, graph_from

GUARD_S = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + GUARD_S
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.01)


async def until_listening(port: int) -> None:
    deadline = time.monotonic() + GUARD_S
    while True:
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on port {port}"
            await asyncio.sleep(0.01)
            continue
        writer.close()
        await writer.wait_closed()
        return


def taken_by_sink(runtime: Runtime) -> int:
    """Packets that left the `out` node's inbox: in its hands or done."""
    inbox = runtime.nodes["out"].inbox
    assert inbox is not None
    return inbox.left


def ingest_graph(
    tmp_path: Path, port: int, sink: str, source_extra: str = "", inbox: str = ""
) -> Any:
    return graph_from(
        tmp_path,
        f"""
nodes:
  - id: src
    kind: source
    plugin: http_ingest
    config: {{port: {port}{source_extra}}}
  - id: out
    kind: sink
    plugin: "tests.runtime.plugins:{sink}"
    {inbox}
edges:
  - {{from: src, to: out}}
""",
    )


def steer(
    graph: Any, tmp_path: Path, steps: Callable[[Runtime, HttpIngest], Awaitable[None]]
) -> dict[str, Any]:
    """Run the graph while `steps` talks to it, then stop it; check every packet is counted."""

    async def scenario() -> dict[str, Any]:
        runtime = Runtime(graph, state_dir=tmp_path / "state")
        control = RuntimeControl(runtime)
        task = asyncio.create_task(runtime.run())
        try:
            await until(lambda: "src" in runtime.nodes, "the runtime built its nodes")
            plugin = runtime.nodes["src"].plugin
            assert isinstance(plugin, HttpIngest)
            await until_listening(plugin.config.port)
            await steps(runtime, plugin)
        finally:
            control.stop()
        return await asyncio.wait_for(task, GUARD_S)

    report = asyncio.run(scenario())
    assert_counts_add_up(report, graph)
    return report


def test_202_comes_only_once_the_sink_delivered(tmp_path: Path) -> None:
    port = free_port()

    async def steps(runtime: Runtime, plugin: HttpIngest) -> None:
        async with httpx.AsyncClient(timeout=GUARD_S) as client:
            posting = asyncio.create_task(
                client.post(f"http://127.0.0.1:{port}/ingest", json={"t": 21.5})
            )
            await until(lambda: taken_by_sink(runtime) == 1, "the sink took it")
            # the sink holds it behind a closed gate: nothing may answer 202 meanwhile
            done, _ = await asyncio.wait({posting}, timeout=0.5)
            assert not done, posting.result()
            plugins.GATES["out"].set()
            answer = await posting
        assert answer.status_code == 202, answer.text
        assert answer.json()["accepted"] == 1
        assert [p.payload for p in plugins.RECORDS["out"]] == [{"t": 21.5}]

    report = steer(ingest_graph(tmp_path, port, "Gated"), tmp_path, steps)
    assert report["nodes"]["src"]["plugin_stats"]["answers"] == {"202": 1}


def test_a_sink_s_delivery_answers_at_once_not_at_the_next_checkpoint_poll(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With an in-memory sink, a 202 follows the sink's delivery, not the tracker's next poll
    (0.1 s: a client posting one request at a time got 10 answers a second). The poll is
    pushed out to an hour here: only the sink's settled batch can answer the requests."""
    monkeypatch.setattr(checkpoints, "CHECKPOINT_INTERVAL_S", 3600.0)
    port = free_port()

    async def steps(runtime: Runtime, plugin: HttpIngest) -> None:
        async with httpx.AsyncClient(timeout=GUARD_S) as client:
            for n in range(5):  # one at a time, as a device does
                answer = await client.post(f"http://127.0.0.1:{port}/ingest", json={"n": n})
                assert answer.status_code == 202, answer.text
        assert [p.payload["n"] for p in plugins.RECORDS["out"]] == list(range(5))

    graph = ingest_graph(tmp_path, port, "Recorder", source_extra=", accept_timeout_s: 30")
    report = steer(graph, tmp_path, steps)
    assert report["nodes"]["src"]["plugin_stats"]["answers"] == {"202": 5}


def test_a_request_still_waiting_when_the_run_stops_is_answered_503(tmp_path: Path) -> None:
    port = free_port()
    graph = ingest_graph(tmp_path, port, "Gated")

    async def scenario() -> tuple[httpx.Response, dict[str, Any]]:
        runtime = Runtime(graph, state_dir=tmp_path / "state", drain_timeout_s=0.5)
        task = asyncio.create_task(runtime.run())
        await until(lambda: "src" in runtime.nodes, "the runtime built its nodes")
        await until_listening(port)
        async with httpx.AsyncClient(timeout=GUARD_S) as client:
            posting = asyncio.create_task(
                client.post(f"http://127.0.0.1:{port}/ingest", json={"t": 1})
            )
            await until(lambda: taken_by_sink(runtime) == 1, "the sink took it")
            RuntimeControl(runtime).stop()  # the sink never delivers: the drain gives up
            answer = await posting
        return answer, await asyncio.wait_for(task, GUARD_S)

    answer, report = asyncio.run(scenario())
    plugins.GATES["out"].set()  # the sink's thread, left behind, finishes within this test
    asyncio.run(until(lambda: len(plugins.RECORDS["out"]) == 1, "the left thread finished"))
    assert answer.status_code == 503, answer.text
    assert "stopped before the records were safe" in answer.json()["error"]
    assert answer.headers["Retry-After"] == "1"
    assert report["nodes"]["src"]["plugin_stats"]["answers"] == {"503": 1}


@pytest.mark.parametrize("busy_status", [503, 429])
def test_backpressure_answers_busy_with_retry_after_and_202s_what_it_took(
    tmp_path: Path, busy_status: int
) -> None:
    port = free_port()
    answers: list[httpx.Response] = []

    async def steps(runtime: Runtime, plugin: HttpIngest) -> None:
        url = f"http://127.0.0.1:{port}/ingest"
        async with httpx.AsyncClient(timeout=GUARD_S) as client:
            too_big = await client.post(url, json=[{"n": -1}] * 3)  # never fits the queue
            assert too_big.status_code == 413, too_big.text
            assert "split the body" in too_big.json()["error"]
            waiting: list[asyncio.Task[httpx.Response]] = []
            for n in range(50):  # far more than the queue and the inbox hold
                received = plugin.received
                posting = asyncio.create_task(client.post(url, json={"n": n}))
                await until(
                    lambda: posting.done() or plugin.received > received,  # noqa: B023
                    "the request was queued or refused",
                )
                if posting.done():
                    break
                waiting.append(posting)
            busy = await posting
            assert busy.status_code == busy_status, busy.text
            assert busy.headers["Retry-After"] == "1"
            assert "not keeping up" in busy.json()["error"]
            assert not any(w.done() for w in waiting)
            plugins.GATES["out"].set()
            answers.extend(await asyncio.gather(*waiting))
        assert [a.status_code for a in answers] == [202] * len(answers)
        await until(lambda: len(plugins.RECORDS["out"]) == len(answers), "all were delivered")

    graph = ingest_graph(
        tmp_path,
        port,
        "Gated",
        f", queue_max: 2, busy_status: {busy_status}",
        "inbox: {max: 1}",
    )
    report = steer(graph, tmp_path, steps)
    assert [p.payload["n"] for p in plugins.RECORDS["out"]] == list(range(len(answers)))
    assert report["nodes"]["src"]["plugin_stats"]["answers"] == {
        "202": len(answers),
        str(busy_status): 1,
        "413": 1,
    }


def test_refusals_say_why_and_keys_follow_the_idempotency_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INGEST_TOKEN", "s3cret")
    port = free_port()
    url = f"http://127.0.0.1:{port}/ingest"
    ok = {"Authorization": "Bearer s3cret"}
    ndjson = {**ok, "Content-Type": "application/x-ndjson"}

    async def steps(runtime: Runtime, plugin: HttpIngest) -> None:
        async with httpx.AsyncClient(timeout=GUARD_S) as client:
            wrong = {"Authorization": "Bearer x"}
            plain, as_json = (
                {**ok, "Content-Type": "text/plain"},
                {**ok, "Content-Type": "application/json"},
            )
            refused = [
                (await client.post(url, json={"a": 1}), 401, "bearer token"),
                (await client.post(url, json={"a": 1}, headers=wrong), 401, "token"),
                (await client.post(url, content=b"x" * 2000, headers=ok), 413, "larger than 1024"),
                (await client.post(url, content=b"a=1", headers=plain), 415, "x-ndjson"),
                (await client.post(url, content=b"{nope", headers=as_json), 400, "not JSON"),
                (await client.post(url, content=b'{"a": 1}\n[2]\n', headers=ndjson), 400, "line 2"),
                (await client.post(url, json=[{"a": 1}, 2], headers=ok), 400, "item 1"),
                (await client.post(url, json=[{"a": n} for n in range(4)], headers=ok), 413, "3"),
            ]  # fmt: skip
            for answer, status, why in refused:
                assert answer.status_code == status, answer.text
                assert why in answer.json()["error"]
            assert refused[0][0].headers["WWW-Authenticate"] == "Bearer"
            body = b'{"a": 1}\n\n{"a": 2}\n{"a": 3}'
            good = await client.post(
                url, content=body, headers={**ndjson, "Idempotency-Key": "dev-7"}
            )
            assert good.status_code == 202, good.text
            anonymous = await client.post(url, json={"a": 4}, headers=ok)
            assert anonymous.status_code == 202, anonymous.text
        assert plugin.received == 4

    graph = ingest_graph(
        tmp_path,
        port,
        "Recorder",
        ", token_env: INGEST_TOKEN, max_body_bytes: 1024, max_records: 3, kind: sensor",
    )
    steer(graph, tmp_path, steps)
    received = plugins.RECORDS["out"]
    assert [p.payload for p in received] == [{"a": 1}, {"a": 2}, {"a": 3}, {"a": 4}]
    assert {p.kind for p in received} == {"sensor"}
    assert [p.idempotency_key for p in received[:3]] == ["dev-7:0", "dev-7:1", "dev-7:2"]
    anonymous = received[3].idempotency_key.split(":")
    assert anonymous[0] == "src" and anonymous[2:] == ["3", "0"]  # node, run, first seq, n


def test_a_wrong_path_or_method_is_answered_in_json_with_where_to_post(tmp_path: Path) -> None:
    # "Every answer has a JSON body" (docs/sensors.md): aiohttp's own 404 and 405 were text.
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    async def steps(runtime: Runtime, plugin: HttpIngest) -> None:
        async with httpx.AsyncClient(timeout=GUARD_S) as client:
            elsewhere = await client.post(f"{base}/readings", json={"a": 1})
            fetched = await client.get(f"{base}/ingest")
        assert elsewhere.status_code == 404
        assert elsewhere.json() == {"error": "nothing is served at /readings: POST to /ingest"}
        assert fetched.status_code == 405 and fetched.headers["Allow"] == "POST"
        assert fetched.json() == {"error": "GET is not accepted: POST records to /ingest"}
        assert plugin.answers == {404: 1, 405: 1}

    steer(ingest_graph(tmp_path, port, "Recorder"), tmp_path, steps)


def test_a_path_the_router_would_not_match_literally_is_a_validation_problem() -> None:
    # aiohttp's router reads `{device}` as a variable and never matches a percent-escape as
    # written: such a path took no POST at all, and the JSON answer contradicted itself
    # ("POST is not accepted: POST records to /ingest/{device}", "nothing is served at
    # /café: POST to /caf%C3%A9"). A query or fragment is no part of a path either.
    from schnitzel.validate.validator import validate_text

    for bad in ("/ingest/{device}", "/caf%C3%A9", "/ingest?x=1", "/ingest#a", "/in gest"):
        text = f"""version: 2
nodes:
  - {{id: src, kind: source, plugin: http_ingest, config: {{path: '{bad}'}}}}
  - {{id: out, kind: sink, plugin: "null"}}
edges:
  - {{from: src, to: out}}
"""
        problems = validate_text(text, source="graph.yaml").report.problems
        messages = " ".join(p.render() for p in problems)
        assert "path" in messages and "letters, digits" in messages, (bad, messages)
    for good in ("/", "/ingest/", "/v1/devices:push", "/a-b_c.d~e"):
        text = f"""version: 2
nodes:
  - {{id: src, kind: source, plugin: http_ingest, config: {{path: '{good}'}}}}
  - {{id: out, kind: sink, plugin: "null"}}
edges:
  - {{from: src, to: out}}
"""
        assert validate_text(text, source="graph.yaml").report.errors == [], good


def test_tls_serves_https_with_the_configured_certificate(tmp_path: Path) -> None:
    self_signed_certificate(tmp_path)
    port = free_port()

    async def steps(runtime: Runtime, plugin: HttpIngest) -> None:
        async with httpx.AsyncClient(timeout=GUARD_S, verify=trusting(tmp_path)) as client:
            answer = await client.post(f"https://127.0.0.1:{port}/ingest", json={"tls": True})
        assert answer.status_code == 202, answer.text

    graph = ingest_graph(tmp_path, port, "Recorder", ", tls_cert: cert.pem, tls_key: key.pem")
    steer(graph, tmp_path, steps)
    assert [p.payload for p in plugins.RECORDS["out"]] == [{"tls": True}]


def test_a_missing_token_variable_or_certificate_is_a_validation_problem(tmp_path: Path) -> None:
    from schnitzel.validate.validator import validate_text

    path = tmp_path / "graph.yaml"
    path.write_text(
        """version: 2
nodes:
  - id: src
    kind: source
    plugin: http_ingest
    config: {token_env: NO_SUCH_VARIABLE_HERE, tls_cert: c.pem, tls_key: k.pem}
  - {id: out, kind: sink, plugin: "null"}
edges:
  - {from: src, to: out}
"""
    )
    result = validate_text(path.read_text(), source=str(path), path=path)
    messages = " ".join(p.render() for p in result.report.problems)
    assert "NO_SUCH_VARIABLE_HERE" in messages
    assert "c.pem" in messages and "k.pem" in messages


HOSTILE_BODIES = [
    (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deep"),
    (b'{"a": NaN}', "NaN"),
    (b'{"a": -Infinity}', "-Infinity"),
    (b'{"a": 1e999}', "1e999"),
    (b'{"a": "\\ud800"}', "lone surrogate"),  # answered 202, then dropped as not portable
    (b'{"a": ' + b"7" * 5000 + b"}", "4300 digits"),
]


@pytest.mark.parametrize("content_type", ["application/json", "application/x-ndjson"])
def test_hostile_json_is_refused_400_naming_the_problem_and_the_server_goes_on(
    tmp_path: Path, content_type: str
) -> None:
    """Deep nesting was a 500 with a traceback in the log; NaN, Infinity and 1e999 were
    answered 202 and then failed at the first durable inbox or network sink."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/ingest"

    async def steps(runtime: Runtime, plugin: HttpIngest) -> None:
        headers = {"Content-Type": content_type}
        async with httpx.AsyncClient(timeout=GUARD_S) as client:
            for body, why in HOSTILE_BODIES:
                answer = await client.post(url, content=body, headers=headers)
                assert answer.status_code == 400, (body[:20], answer.text)
                assert why in answer.json()["error"], answer.text
            for body in (b'{"a": 1.5e308}', b'{"a": "\\ud83d\\ude00"}'):  # a surrogate pair
                good = await client.post(url, content=body, headers=headers)
                assert good.status_code == 202, good.text
        assert plugin.received == 2
        assert plugin.answers == {400: len(HOSTILE_BODIES), 202: 2}

    steer(ingest_graph(tmp_path, port, "Recorder"), tmp_path, steps)
    assert [p.payload for p in plugins.RECORDS["out"]] == [{"a": 1.5e308}, {"a": "\U0001f600"}]


def test_an_idempotency_key_that_is_not_utf8_is_refused_400_not_accepted_then_dropped(
    tmp_path: Path,
) -> None:
    """Its packets were answered 202, then dropped as not portable (lone surrogates) by the
    first durable inbox: the device never learnt."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/ingest"

    async def steps(runtime: Runtime, plugin: HttpIngest) -> None:
        async with httpx.AsyncClient(timeout=GUARD_S) as client:
            bad = await client.post(url, json={"a": 1}, headers={b"Idempotency-Key": b"\xff-7"})
            assert bad.status_code == 400, bad.text
            assert "Idempotency-Key" in bad.json()["error"], bad.text
            good = await client.post(
                url, json={"a": 2}, headers={b"Idempotency-Key": "café-7".encode()}
            )
            assert good.status_code == 202, good.text

    steer(ingest_graph(tmp_path, port, "Recorder"), tmp_path, steps)
    assert [p.idempotency_key for p in plugins.RECORDS["out"]] == ["café-7:0"]


@pytest.mark.parametrize("through", ["direct", "transform"])
def test_no_202_while_the_durable_inbox_cannot_commit_the_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, through: str
) -> None:
    """The source makes its next batch while the commit runs (runtime/commit_order.py): the
    request is answered only once its records are committed, not once admitted. The store on
    a thread (`process: false`), where the test holds its commits back."""
    from tests.runtime.test_commit_pipeline import HeldCommits

    port = free_port()
    held = HeldCommits(monkeypatch)
    relay = "  - {id: mid, kind: transform, plugin: passthrough}\n"
    edges = "  - {from: src, to: out}\n"
    if through == "transform":
        edges = "  - {from: src, to: mid}\n  - {from: mid, to: out}\n"
    graph = graph_from(
        tmp_path,
        f"""
nodes:
  - {{id: src, kind: source, plugin: http_ingest, config: {{port: {port}}}}}
{relay if through == "transform" else ""}  - id: out
    kind: sink
    plugin: "tests.runtime.plugins:Recorder"
    inbox: {{max: 64, durable: {{path: state/out.db, process: false}}}}
edges:
{edges}""",
    )

    async def steps(runtime: Runtime, plugin: HttpIngest) -> None:
        async with httpx.AsyncClient(timeout=GUARD_S) as client:
            url = f"http://127.0.0.1:{port}/ingest"
            assert (await client.post(url, json={"t": -1})).status_code == 202
            held.failing.set()  # as a full disk: the inbox retries, nothing is committed
            posting = asyncio.create_task(client.post(url, json=[{"t": t} for t in range(50)]))
            await until(lambda: held.failed >= 4, "commits failed and were retried")
            assert not posting.done(), posting.result()
            held.failing.clear()
            answer = await posting
        assert answer.status_code == 202, answer.text
        assert held.committed >= set(range(1, 51))  # 0 was the first request's

    steer(graph, tmp_path, steps)
    assert len(plugins.RECORDS["out"]) == 51
