"""A real `kill -9` of a process holding a durable store, against the model of
test_store_damage_model.py: a child commits a planned sequence of batches (rows in, the oldest
rows settled) and says after each commit that it returned; the test kills it at a random
point. The reopened store must hold exactly what the plan held after one commit at or after
the last one the child confirmed (commits after it may or may not have happened, never a
part of one), report nothing lost and nothing it could not check, and give the rows back in
order with their bodies intact."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from schnitzel.durable.store import DurableStore

CHILD = """
import json, sys
from pathlib import Path
from schnitzel.durable.store import DurableStore
plan = json.loads(sys.argv[2])
store = DurableStore(Path(sys.argv[1]), "FULL")
store.open()
for i, (first, n, settle) in enumerate(plan):
    rows = [(s, 0.0, b'{"n":%d}' % s) for s in range(first, first + n)]  # batch rows, cut
    store.commit(rows, [tuple(r) for r in settle], 0)
    print(i, flush=True)
print("done", flush=True)
sys.stdin.read()
"""


def plan_for(seed: int) -> tuple[list[tuple[int, int, list[list[int]]]], list[list[int]]]:
    """The child's commits (first seq, rows, settled ranges) and what the store holds after
    each one (sorted seqs)."""
    rng = random.Random(seed)
    plan: list[tuple[int, int, list[list[int]]]] = []
    held: list[int] = []
    states: list[list[int]] = []
    next_seq = 1
    for _ in range(300):
        n = rng.randint(1, 200)
        settle: list[list[int]] = []
        if held and rng.random() < 0.6:
            k = rng.randint(1, len(held))
            done, held = held[:k], held[k:]
            settle = [[done[0], done[-1]]] if done[-1] - done[0] + 1 == len(done) else []
            if not settle:
                settle = [[s, s] for s in done]
        plan.append((next_seq, n, settle))
        held = held + list(range(next_seq, next_seq + n))
        next_seq += n
        states.append(list(held))
    return plan, states


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_a_store_killed_mid_commit_holds_a_whole_prefix_of_its_commits(
    tmp_path: Path, seed: int
) -> None:
    plan, states = plan_for(seed)
    kill_after = random.Random(seed * 7).randint(0, len(plan) - 2)
    path = tmp_path / "out.db"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), json.dumps(plan)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    confirmed = -1
    try:
        for line in child.stdout:
            if line.strip() == "done":
                break
            confirmed = int(line)
            if confirmed >= kill_after:
                break
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(60)
    assert confirmed >= kill_after or confirmed == len(plan) - 1

    store = DurableStore(path, "FULL")
    backlog = store.open()
    try:
        assert backlog.lost is None, backlog.lost
        assert backlog.note == ""
        assert backlog.quarantined is None
        found: list[int] = []
        while True:
            good, damaged = store.read(500)
            assert damaged == []
            if not good:
                break
            for s, _at, body in good:
                assert body == b'{"n":%d}' % s
                found.append(s)
    finally:
        store.close()
    assert backlog.count == len(found)
    # The child may have gone on committing between its last line read and the kill: any
    # whole prefix at or after the last confirmed commit is right, nothing short of it.
    after = [j for j in range(confirmed, len(plan)) if states[j] == found]
    assert after, f"the store holds no whole prefix of the commits at or after {confirmed}"
