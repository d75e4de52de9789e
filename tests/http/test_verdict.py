"""What an answer means (verdict.py), and how the sink judges refusals by the packets around
them, against the real loopback server: the table of statuses, poison only where the backend
takes other packets, a refusing backend retried, the reason in words, the deadline."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from schnitzel.contract.packet import StreamPacket
from schnitzel.registry.plugin import NodeContext
from schnitzel_plugins.http.errors import HttpGaveUp, HttpRejected, HttpSinkError
from schnitzel_plugins.http.sink import HttpSink, HttpSinkConfig
from schnitzel_plugins.http.verdict import Answer, classify, is_poison
from tests.http_backend import LoopbackBackend, Received

FAST = {
    "retry_initial_s": 0.01,
    "retry_max_s": 0.05,
    "breaker_cooldown_s": 0.01,
    "breaker_max_cooldown_s": 0.02,
}


@pytest.mark.parametrize(
    ("status", "answer"),
    [
        (200, Answer.DELIVERED),
        (204, Answer.DELIVERED),
        (None, Answer.TRANSIENT),
        (500, Answer.TRANSIENT),
        (503, Answer.TRANSIENT),
        (408, Answer.TRANSIENT),
        (425, Answer.TRANSIENT),
        (429, Answer.TRANSIENT),
        (301, Answer.BACKEND),
        (302, Answer.BACKEND),
        (307, Answer.BACKEND),
        (308, Answer.BACKEND),
        (401, Answer.BACKEND),
        (403, Answer.BACKEND),
        (404, Answer.BACKEND),
        (405, Answer.BACKEND),
        (407, Answer.BACKEND),
        (410, Answer.BACKEND),
        (421, Answer.BACKEND),
        (426, Answer.BACKEND),
        (431, Answer.BACKEND),
        (400, Answer.PACKET),
        (409, Answer.PACKET),
        (415, Answer.PACKET),
        (422, Answer.PACKET),
        (499, Answer.PACKET),
    ],
)
def test_each_status_says_something_about_the_backend_or_the_packet(
    status: int | None, answer: Answer
) -> None:
    assert classify(status) is answer


def test_a_413_is_about_the_packet_only_for_a_body_much_larger_than_one_accepted() -> None:
    assert classify(413, body_bytes=500, largest_accepted=0) is Answer.BACKEND  # none yet
    assert classify(413, body_bytes=500, largest_accepted=400) is Answer.BACKEND  # usual size
    assert classify(413, body_bytes=500, largest_accepted=250) is Answer.BACKEND
    assert classify(413, body_bytes=5000, largest_accepted=400) is Answer.PACKET


def test_only_a_packet_answer_with_a_recent_acceptance_is_poison() -> None:
    assert is_poison(Answer.PACKET, accepted_recently=True)
    assert not is_poison(Answer.PACKET, accepted_recently=False)
    assert not any(
        is_poison(answer, accepted_recently=True)
        for answer in (Answer.BACKEND, Answer.TRANSIENT, Answer.DELIVERED)
    )


# -- the sink ------------------------------------------------------------------------------


def make_sink(url: str, tmp_path: Path, durable: bool = True, **options: Any) -> HttpSink:
    context = NodeContext(
        "out", tmp_path, tmp_path / "state", logging.getLogger("schnitzel.test.out"), durable
    )
    return HttpSink(HttpSinkConfig(url=url, **{**FAST, **options}), context)


def packet(seq: int, **payload: Any) -> StreamPacket:
    return StreamPacket.new("sensor", "cam", seq, {"v": seq, **payload})


def poisoned(request: Received) -> bool:
    return any(isinstance(p, dict) and p["payload"].get("poison") for p in request.packets)


async def deliver_batch(sink: HttpSink, packets: list[StreamPacket]) -> list[Exception | None]:
    """As the runtime does: the batch, then packet by packet when the batch raised."""
    await sink.open()
    try:
        try:
            await sink.deliver_batch(packets)
        except HttpSinkError:
            outcomes: list[Exception | None] = []
            for each in packets:
                try:
                    await sink.deliver(each)
                except HttpSinkError as exc:
                    outcomes.append(exc)
                else:
                    outcomes.append(None)
            return outcomes
        return [None] * len(packets)
    finally:
        await sink.close()


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 180))  # against a hang only


@pytest.mark.parametrize("batch_max", [1, 4])
def test_poison_pills_among_good_packets_fail_alone_and_are_sent_no_more_than_needed(
    loopback_backend: LoopbackBackend, tmp_path: Path, batch_max: int
) -> None:
    bad = {0, 3, 4, 5, 9}  # the first, three in a row, the last
    packets = [packet(i, poison=i in bad) for i in range(10)]
    loopback_backend.reject_if(poisoned, 422, body="not a reading")
    outcomes = run(
        deliver_batch(make_sink(loopback_backend.url, tmp_path, batch_max=batch_max), packets)
    )

    failed = {i for i, outcome in enumerate(outcomes) if outcome is not None}
    assert failed == bad
    assert all(isinstance(outcomes[i], HttpRejected) for i in bad)
    assert loopback_backend.count_by_key() == {f"cam:{i}": 1 for i in range(10) if i not in bad}
    # the runtime's deliver() calls after the batch answered from the verdicts: no resend
    singles = [r for r in loopback_backend.requests if isinstance(r.body, dict)]
    assert all(n <= 2 for n in Counter(r.key for r in singles).values())


def test_a_backend_refusing_every_packet_keeps_the_first_until_it_accepts(
    loopback_backend: LoopbackBackend, tmp_path: Path
) -> None:
    loopback_backend.reject_if(lambda r: True, 422, body="schema v1 is gone")
    sink = make_sink(loopback_backend.url, tmp_path)

    async def scenario() -> list[Exception | None]:
        delivery = asyncio.create_task(deliver_batch(sink, [packet(i) for i in range(10)]))
        while sum(r.status == 422 for r in loopback_backend.requests) < 20:
            assert not delivery.done()
            await asyncio.sleep(0.01)
        assert "HTTP 422" in (sink.trouble or "") and "every request refused" in (
            sink.trouble or ""
        )
        loopback_backend.clear_rules()
        return await delivery

    assert run(scenario()) == [None] * 10
    assert set(loopback_backend.keys()) == {f"cam:{i}" for i in range(10)}
    assert sink.trouble is None
    tried = {r.key for r in loopback_backend.requests if r.status == 422}
    assert len(tried) == 5  # the first and LOOKAHEAD more, then only the first, retried


def test_without_a_durable_inbox_a_refusing_backend_costs_max_retries_then_on_error(
    loopback_backend: LoopbackBackend, tmp_path: Path
) -> None:
    loopback_backend.reject_if(lambda r: True, 401, body="token expired")
    sink = make_sink(loopback_backend.url, tmp_path, durable=False, max_retries=2)
    outcomes = run(deliver_batch(sink, [packet(0)]))
    assert isinstance(outcomes[0], HttpGaveUp) and outcomes[0].attempts == 3
    message = str(outcomes[0])
    assert "HTTP 401 Unauthorized: token expired" in message and "max_retries 2" in message


def test_the_reason_names_the_status_the_url_and_how_long(
    loopback_backend: LoopbackBackend, tmp_path: Path
) -> None:
    loopback_backend.fail_next(3, 401, body="token expired")
    sink = make_sink(loopback_backend.url, tmp_path, breaker_failures=2)
    seen: list[str | None] = []

    async def scenario() -> None:
        await sink.open()
        try:
            delivery = asyncio.create_task(sink.deliver(packet(0)))
            while sink.trouble is None or "2 in a row" not in sink.trouble:
                assert not delivery.done()
                await asyncio.sleep(0.001)
            seen.append(sink.trouble)
            await delivery
        finally:
            await sink.close()

    run(scenario())
    assert seen[0] is not None
    assert seen[0].startswith(f"HTTP 401 Unauthorized: token expired from {loopback_backend.url}")
    assert "every request refused for" in seen[0]
    assert sink.trouble is None and loopback_backend.keys() == ["cam:0"]


def test_a_trickling_answer_misses_the_deadline(
    loopback_backend: LoopbackBackend, tmp_path: Path
) -> None:
    # 400 bytes at 0.5 s each: past the guard (180 s), which fails a sink that waits for the
    # whole body. The answer starts at once: the deadline, not a slow start, cuts it.
    loopback_backend.trickle_next(1, every_s=0.5, body_bytes=400)
    sink = make_sink(loopback_backend.url, tmp_path, durable=False, timeout_s=2.0, max_retries=0)
    outcomes = run(deliver_batch(sink, [packet(0)]))
    assert isinstance(outcomes[0], HttpGaveUp)
    assert "no complete answer within 2 s" in str(outcomes[0])
    assert [r.key for r in loopback_backend.requests] == ["cam:0"]
