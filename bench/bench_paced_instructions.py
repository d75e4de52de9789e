"""Instructions per packet of goal 3's paced graph (`bench_paced.py`), counted on a virtual
clock under valgrind, so that the count does not move with the machine's load.

`bench_paced.py` runs in real time: on a busy machine the CPU seconds it reports move by
10-20% from run to run (a process that lost its core wakes late, its sources catch up in
bigger batches, each wake-up costs more or less), too much to see a change of a few percent.
Here the same graph (and the hand-written asyncio comparator) runs on an event loop whose
clock only moves when the loop would sleep: every timer fires exactly when due and the
processing itself takes no time on that clock, so which sources wake together, and the
batches the nodes take, are the same in every run. valgrind (callgrind) counts the
instructions of a short and a long run in fresh processes; their difference, per packet,
is the steady cost of a packet with start-up and stop taken out.

What it does not show: the latency tail (nothing waits for a core here) and the batch sizes
of a late, busy process. Those are `bench_paced.py`'s.

Run: .venv/bin/python bench/bench_paced_instructions.py [--before DIR] [--seconds S]
(`--before DIR`: also schnitzel and its plugin packs imported from DIR, a checkout, e.g.
`git worktree add --detach DIR main`; see `bench_paced.import_root`.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SHORT_S = 0.5
"""The short run, whose count is taken off the long one's (start-up and stop)."""


class VirtualClock:
    """`time.monotonic` and `time.time` of a run: they move only when the loop would sleep."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.epoch = 1.7e9

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.epoch + self.now


CLOCK = VirtualClock()


class VirtualSelector(selectors.DefaultSelector):
    """A selector whose waits with nothing ready pass at once, moving the virtual clock."""

    def select(self, timeout: float | None = None) -> list[Any]:
        ready: list[Any] = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:  # only I/O to wait for (a thread's result): really wait
            return super().select(None)
        CLOCK.now += timeout
        return ready


class VirtualLoop(asyncio.SelectorEventLoop):
    """asyncio's own loop on the virtual clock."""

    def __init__(self) -> None:
        super().__init__(VirtualSelector())

    def time(self) -> float:
        return CLOCK.now


def child(which: str, seconds: float) -> None:
    """One run on the virtual clock; prints the packets the sink got (JSON)."""
    time.monotonic = CLOCK.monotonic  # before schnitzel binds `time.time` at import
    time.time = CLOCK.time
    sys.path.insert(0, str(HERE))
    import bench_paced
    from _paced_sink import AGES

    cpu = time.process_time()
    if which == "asyncio":
        stamps: list[float] = []
        ages: list[float] = []
        with asyncio.Runner(loop_factory=VirtualLoop) as runner:
            runner.run(bench_paced.comparator(seconds, stamps, ages))
        print(json.dumps({"delivered": len(ages), "cpu_s": time.process_time() - cpu}))
        return
    from schnitzel.runtime import Runtime
    from schnitzel.validate import validate_text

    with tempfile.TemporaryDirectory() as tmp:
        graph = bench_paced.graph_text()
        result = validate_text(graph, source="paced.yaml", path=Path(tmp) / "paced.yaml")
        assert result.graph is not None, [p.render() for p in result.report.problems]
        runtime = Runtime(result.graph, state_dir=Path(tmp) / "state", drain_timeout_s=30.0)
        with asyncio.Runner(loop_factory=VirtualLoop) as runner:
            report = runner.run(runtime.run(duration_s=seconds))
    cpu = time.process_time() - cpu
    totals = report["totals"]
    assert totals["dropped"] == 0 and totals["errors"] == 0, totals
    print(json.dumps({"delivered": len(AGES), "cpu_s": cpu}))


def counted(which: str, seconds: float, tree: Path | None) -> tuple[int, int]:
    """Instructions of one run in a fresh process under callgrind, and its packets."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH")]))
    cmd = [sys.executable, __file__, "--child", which, "--seconds", str(seconds)]
    valgrind = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    done = subprocess.run(valgrind + cmd, capture_output=True, text=True, env=env, check=True)
    found = re.search(r"Collected : (\d+)", done.stderr)
    assert found is not None, done.stderr[-2000:]
    delivered = json.loads(done.stdout.strip().splitlines()[-1])["delivered"]
    return int(found.group(1)), delivered


def per_packet(which: str, seconds: float, tree: Path | None) -> float:
    """Steady instructions per packet: a long run less a short one."""
    long_i, long_p = counted(which, seconds, tree)
    short_i, short_p = counted(which, SHORT_S, tree)
    return (long_i - short_i) / (long_p - short_p)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="also schnitzel imported from this checkout")
    parser.add_argument("--seconds", type=float, default=2.5, help="the long run (2.5 s)")
    parser.add_argument("--child", choices=["schnitzel", "asyncio"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.seconds)
        return
    if shutil.which("valgrind") is None:
        parser.error("needs valgrind (apt-get install valgrind)")
    print(
        f"instructions per packet, virtual clock, {args.seconds:g} s less {SHORT_S:g} s "
        "(valgrind callgrind, fresh processes)"
    )
    figures = {"asyncio": per_packet("asyncio", args.seconds, None)}
    figures["schnitzel"] = per_packet("schnitzel", args.seconds, None)
    if args.before is not None:
        sys.path.insert(0, str(HERE))
        from bench_paced import import_root

        before = import_root(args.before.resolve())
        figures["before"] = per_packet("schnitzel", args.seconds, before)
    base = figures["asyncio"]
    for name, value in figures.items():
        print(f"  {name:9} {value:9,.0f} per packet ({value / base:.2f}x the comparator)")
    if "before" in figures:
        print(f"  -> schnitzel {figures['schnitzel'] / figures['before']:.3f}x before")


if __name__ == "__main__":
    main()
