"""The lookahead that tells a poison pill from a backend refusing everything (lookahead.py),
against a model of a backend: random runs of packets it refuses among packets it takes."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from schnitzel_plugins.http.lookahead import LOOKAHEAD, Refused, judge


class Poison(Exception):
    """The model's verdict for an item judged a poison pill."""


class Kept(Exception):
    """The model's stand-in for "kept and retried until the backend takes it": the real
    sink would wait here for as long as the backend refuses."""


@dataclass
class Backend:
    """Refuses the items in `bad` (422), takes the others. `recent` as the sink tracks it
    (its clock aside): an acceptance since the lookahead last decided the backend refuses
    all, and fewer than LOOKAHEAD items judged poison since that acceptance."""

    bad: set[int]
    sent: Counter[int] = field(default_factory=Counter)
    log: list[int] = field(default_factory=list)
    accepted: bool = False
    poisoned: int = 0
    forgotten: int = 0

    @property
    def recent(self) -> bool:
        return self.accepted and self.poisoned < LOOKAHEAD

    async def send(self, item: int, doubt: bool) -> None:
        self.sent[item] += 1
        self.log.append(item)
        if item not in self.bad:
            self.accepted, self.poisoned = True, 0
            return
        if doubt:
            raise Refused("HTTP 422", self.recent)
        raise self.poison() if self.recent else Kept()

    def poison(self, refused: Refused | None = None, proven: bool = False) -> Poison:
        self.poisoned += 0 if proven else 1
        return Poison()

    def forget(self) -> None:
        self.forgotten += 1
        self.accepted = False


def judged(backend: Backend, n: int) -> dict[str, Exception | None]:
    return asyncio.run(
        judge(
            list(range(n)),
            key=str,
            send=backend.send,
            poison=backend.poison,
            refuses_everything=backend.forget,
            errors=(Poison, Kept),
        )
    )


def runs_of_bad(bad: set[int], n: int) -> list[int]:
    runs, length = [], 0
    for item in range(n):
        if item in bad:
            length += 1
        elif length:
            runs.append(length)
            length = 0
    return [*runs, length] if length else runs


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 40).flatmap(lambda n: st.tuples(st.just(n), st.sets(st.integers(0, n - 1)))))
def test_every_packet_gets_one_verdict_and_good_ones_go_once(case: tuple[int, set[int]]) -> None:
    n, bad = case
    backend = Backend(bad)
    verdicts = judged(backend, n)
    assert set(verdicts) == {str(i) for i in range(n)}
    assert all(verdicts[str(i)] is None and backend.sent[i] == 1 for i in range(n) if i not in bad)
    assert all(verdicts[str(i)] is not None for i in bad)


@settings(max_examples=300, deadline=None)
@given(st.integers(2, 40).flatmap(lambda n: st.tuples(st.just(n), st.sets(st.integers(0, n - 1)))))
def test_short_runs_of_poison_among_good_packets_are_poison_sent_at_most_twice(
    case: tuple[int, set[int]],
) -> None:
    n, bad = case
    if len(bad) == n or max(runs_of_bad(bad, n), default=0) > LOOKAHEAD:
        return  # the cases below
    backend = Backend(bad)
    verdicts = judged(backend, n)
    assert all(isinstance(verdicts[str(i)], Poison) for i in bad)
    assert all(backend.sent[i] <= 2 for i in bad)
    assert backend.forgotten == 0


def test_a_longer_run_of_refusals_is_a_backend_refusing_everything() -> None:
    bad = set(range(3, 3 + LOOKAHEAD + 1))
    backend = Backend(bad)
    verdicts = judged(backend, 12)
    assert backend.forgotten == 1
    assert isinstance(verdicts["3"], Kept)  # the first is kept until the backend takes it
    assert [i for i in range(12) if verdicts[str(i)] is None] == [0, 1, 2, *range(8, 12)]
    # the others are judged only once the backend took another packet, right before them
    assert backend.log == [0, 1, 2, 3, 4, 5, 6, 7, 3, 4, 5, 6, 7, 8, 4, 5, 6, 7, 9, 10, 11]


def test_a_backend_refusing_everything_from_the_start_keeps_the_first_packet() -> None:
    backend = Backend(set(range(3)))
    verdicts = judged(backend, 3)  # nothing else to try, nothing ever accepted
    assert isinstance(verdicts["0"], Kept) and backend.forgotten == 0


def test_refused_packets_last_in_a_batch_are_poison_after_a_recent_acceptance() -> None:
    backend = Backend({2, 3})
    verdicts = judged(backend, 4)
    assert [type(verdicts[str(i)]) for i in (2, 3)] == [Poison, Poison]
    assert backend.sent[2] == backend.sent[3] == 1


def test_a_backend_that_starts_refusing_everything_costs_at_most_lookahead_packets() -> None:
    # A quiet stream: the sink is handed one packet at a time, so there is never a later
    # packet to try; the backend takes 0..4, then refuses everything.
    backend = Backend(set(range(5, 30)))
    verdicts = {}
    for item in range(30):
        verdicts.update(
            asyncio.run(
                judge([item], str, backend.send, backend.poison, backend.forget, (Poison, Kept))
            )
        )
    poison = [i for i in range(30) if isinstance(verdicts[str(i)], Poison)]
    assert poison == list(range(5, 5 + LOOKAHEAD))  # then kept, as a backend refusing all
    assert all(isinstance(verdicts[str(i)], Kept) for i in range(5 + LOOKAHEAD, 30))
