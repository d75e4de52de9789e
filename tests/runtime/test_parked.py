"""Parking through the control API on a running graph: a sink refuses some packets (they are
parked), is then fixed by a swap, and the parked packets are requeued while new packets keep
arriving. Nothing is lost or delivered out of place; every packet is accounted for."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from schnitzel import Runtime, RuntimeControl
from schnitzel.durable.parking import Selection
from schnitzel.errors import ControlError
from tests.conftest import run_cli
from tests.runtime import plugins
from tests.runtime.harness import graph_from, steer
from tests.waits import until

REFUSING = """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {rate_hz: 500.0}}
  - id: out
    kind: sink
    plugin: "tests.runtime.plugins:Recorder"
    config: {every: 7}
    inbox: {max: 16, durable: {path: state/out.db}}
  - {id: plain, kind: sink, plugin: "null"}
edges:
  - {from: src, to: out}
  - {from: src, to: plain}
"""


def test_requeue_all_after_a_fix_delivers_every_parked_packet_while_new_ones_arrive(
    tmp_path: Path,
) -> None:
    seen: dict[str, Any] = {}

    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        inbox = runtime.stores["out"]
        await until(lambda: inbox.parked_count >= 10)
        await control.swap("out", "tests.runtime.plugins:Recorder", {"every": 0}, why="fixed")
        requeued = await control.requeue("out", Selection(everything=True), why="fixed")
        seen["requeued"] = requeued["requeued"]
        assert requeued["parked"]["after"] == 0
        # Once said as "no parked packet all (0 parked)".
        with pytest.raises(ControlError, match=r"^node 'out' has no parked packets: nothing to"):
            await control.requeue("out", Selection(everything=True), why="again")
        await until(lambda: inbox.backlog == 0 and inbox.stats.requeued == seen["requeued"])
        delivered = {p.seq for p in plugins.RECORDS["out"]}
        await until(lambda: runtime.nodes["src"].metrics.emitted > max(delivered) + 50)
        audit = control.audit()
        seen["audit"] = [(e["action"], e["outcome"], e["why"]) for e in audit]

    report = steer(graph_from(tmp_path, REFUSING), tmp_path, steps)
    durable = report["nodes"]["out"]["durable"]
    assert durable["requeued"] == seen["requeued"] == durable["parked_this_run"]
    assert durable["parked"] == 0 and report["nodes"]["out"]["dropped"] == 0
    emitted = report["nodes"]["src"]["out"]
    seqs = [p.seq for p in plugins.RECORDS["out"]]
    assert sorted(seqs) == list(range(emitted))  # each once: none lost, none twice
    assert ("requeue", "applied", "fixed") in seen["audit"]


def test_parking_refuses_what_it_cannot_do_and_audits_the_refusal(tmp_path: Path) -> None:
    async def steps(runtime: Runtime, control: RuntimeControl) -> None:
        await until(lambda: runtime.stores["out"].parked_count >= 1)
        with pytest.raises(ControlError, match="has no durable inbox"):
            await control.requeue("plain", Selection(everything=True))
        with pytest.raises(ControlError, match="no parked packet 999"):
            await control.requeue("out", Selection(ids=(999,)))
        with pytest.raises(ControlError, match="say why"):
            await control.drop_parked("out", Selection(everything=True))
        with pytest.raises(ControlError, match="no parked packet 999"):
            await control.parked("out", seq=999)
        listed = await control.parked("out")
        first = listed["packets"][0]["seq"]
        one = await control.parked("out", seq=first)
        assert one["packet"]["packet"]["seq"] % 7 == 0
        dropped = await control.drop_parked("out", Selection(ids=(first,)), why="bad sensor")
        assert dropped["dropped"] == 1
        refused = [e for e in control.audit() if e["outcome"] == "refused"]
        assert [e["action"] for e in refused] == ["requeue", "requeue", "drop-parked"]

    report = steer(graph_from(tmp_path, REFUSING), tmp_path, steps)
    out = report["nodes"]["out"]
    assert out["dropped_by_reason"] == {"parked_dropped": 1}
    durable = out["durable"]
    assert durable["parked"] == durable["parked_this_run"] - 1
    with closing(sqlite3.connect(tmp_path / "state" / "out.db")) as db:
        assert db.execute("SELECT count(*) FROM parked").fetchone()[0] == durable["parked"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["requeue", "out"], "give SEQ (12, 3-9 or 1,4,7) or --all"),
        (["requeue", "out", "3", "--all"], "give SEQ (12, 3-9 or 1,4,7) or --all"),
        (["drop-parked", "out", "9-3", "--why", "x"], "FIRST <= LAST"),
        (["requeue", "out", "1,x"], "'x' is not a parked seq"),
        (["parked", "out", "--show", "0"], "must be at least 1"),
    ],
)
def test_ctl_refuses_a_parked_selection_it_cannot_send_with_exit_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    done = run_cli("ctl", "--socket", str(tmp_path / "none.sock"), *args)
    assert done.returncode == 2 and message in done.stderr, done.stderr
