"""What a change to the durable path costs: bench_durable's items 1 and 3 for two checkouts.

    python bench/bench_durable_ab.py BASE_CHECKOUT [--rounds 6] [--packets 60000]

Item 1 (`synthetic -> null`, durable sync full) and item 3's durable run (`synthetic ->
passthrough -> null`) are measured for an older checkout of this repository (BASE_CHECKOUT, for
example `git worktree add /tmp/base ba1a46c`) and for this one, each measurement in a fresh
process, the two checkouts alternating round by round so the machine's noise hits both alike.
It prints packets/s per round and this/base: the median of the per-round ratios is the figure
(one run of bench_durable.py against another differs by 10-15% on a shared machine). Only the
core (`schnitzel/`) comes from each checkout; the plugins are the installed ones in both runs.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent

CHILD = """
import shutil, tempfile
from pathlib import Path
import bench_durable as b
root = Path(tempfile.mkdtemp(prefix='durable-ab-'))
try:
    print({packets} / b.durable_run(b.Workspace(root), {packets}, stages={stages}))
finally:
    shutil.rmtree(root)
"""
ITEMS = {0: "item 1 synthetic -> null", 1: "item 3 synthetic -> passthrough -> null"}


def measure(checkout: Path, packets: int, stages: int) -> float:
    """Packets/s of one durable run of `checkout`'s code, in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD.format(packets=packets, stages=stages)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": f"{checkout}:{checkout}/bench", "PATH": "/usr/bin:/bin"},
        cwd=checkout,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"{checkout}: the durable run failed:\n{done.stderr[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", type=Path, help="an older checkout of this repository")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--packets", type=int, default=60_000)
    args = parser.parse_args()
    checkouts = {"base": args.base.resolve(), "this": HERE}
    rates: dict[tuple[str, int], list[float]] = {(k, s): [] for k in checkouts for s in ITEMS}
    for round_no in range(args.rounds):
        order = list(checkouts) if round_no % 2 == 0 else list(reversed(checkouts))
        for stages in ITEMS:
            for name in order:
                rates[(name, stages)].append(measure(checkouts[name], args.packets, stages))
        shown = "  ".join(f"{k} {ITEMS[s][:6]} {v[-1]:,.0f}/s" for (k, s), v in rates.items())
        print(f"round {round_no + 1}: {shown}", flush=True)
    for stages, item in ITEMS.items():
        base, this = rates[("base", stages)], rates[("this", stages)]
        ratios = [t / b for t, b in zip(this, base, strict=True)]
        print(
            f"{item}: base median {statistics.median(base):,.0f}/s, this median "
            f"{statistics.median(this):,.0f}/s; this/base median of rounds "
            f"{statistics.median(ratios):.3f} (rounds {', '.join(f'{r:.2f}' for r in ratios)})"
        )


if __name__ == "__main__":
    main()
