"""Record what the control API answers during a real run of a graph, for `RecordedSource`.

    .venv/bin/python -m tests.tui.record graphs/console.yaml console

The graph runs from a scratch copy (its stores and outputs land there; paths are written as
`graphs/...`) and timestamps are moved to a fixed epoch, so a recording renders the same on
every machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schnitzel.control.runtime_control import RuntimeControl
from schnitzel.runtime import Runtime
from schnitzel.validate.validator import load_graph
from tests.tui.recorded_source import RECORDED

ROOT = Path(__file__).resolve().parents[2]
EPOCH = 1_800_000_000.0
"""Recorded timestamps are moved to start here (2027-01-15 08:00 UTC)."""


async def record(graph: Path, seconds: float, every_s: float) -> dict[str, Any]:
    """Run `graph` for `seconds`, polling like the console does."""
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / graph.name  # its stores and outputs land in the scratch dir
        copy.write_bytes(graph.read_bytes())
        runtime = Runtime(load_graph(copy), Path(scratch) / "state", drain_timeout_s=2.0)
        control = RuntimeControl(runtime)
        run = asyncio.create_task(runtime.run(duration_s=seconds))
        snapshots = []
        answers: dict[str, Any] = {}
        while not run.done():
            await asyncio.sleep(every_s)
            snapshot = control.snapshot()
            snapshots.append(snapshot)
            if snapshot["status"] == "running" and not snapshot["stopping"]:
                answers = {"suggestions": control.suggestions(), "controller": control.controller()}
        await run
        recorded = {
            "describe": control.describe(),
            "snapshots": snapshots,
            "events": control.events(limit=500),
            "answers": answers,
        }
        text = json.dumps(recorded).replace(scratch, "graphs")
        return dict(json.loads(text))


def portable(data: Any, start: float) -> Any:
    """Repository paths made relative; wall-clock times moved to EPOCH, those written in
    text (`since 09:41:07`, the local time of the run) too, as UTC clock times (the snapshot
    tests render in UTC)."""
    if isinstance(data, dict):
        return {k: _moved(k, v, start) for k, v in data.items()}
    if isinstance(data, list):
        return [portable(v, start) for v in data]
    if isinstance(data, str):
        text = data.replace(str(ROOT) + "/", "")
        return CLOCK.sub(lambda m: _moved_clock(m.group(0), start), text)
    return data


WALL_CLOCK_KEYS = frozenset({"ts", "since", "reason_since", "last"})
"""Keys whose float values are time.time() values (events, errors, a node's trouble)."""
CLOCK = re.compile(r"\b\d\d:\d\d:\d\d\b")


def _moved_clock(clock: str, start: float) -> str:
    """A local `HH:MM:SS` of the recorded run, moved as its timestamp would be."""
    day = datetime.fromtimestamp(start).date()
    at = datetime.combine(day, datetime.strptime(clock, "%H:%M:%S").time()).timestamp()
    if at < start - 43_200:  # the run went past midnight
        at += 86_400
    return datetime.fromtimestamp(EPOCH + at - start, UTC).strftime("%H:%M:%S")


def _moved(key: str, value: Any, start: float) -> Any:
    if key in WALL_CLOCK_KEYS and isinstance(value, float):
        return round(EPOCH + value - start, 3)
    return portable(value, start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("graph", type=Path)
    parser.add_argument("name")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--every", type=float, default=1.0)
    args = parser.parse_args()
    data = asyncio.run(record(args.graph, args.seconds, args.every))
    start = min((e["ts"] for e in data["events"]), default=0.0)
    RECORDED.mkdir(exist_ok=True)
    target = RECORDED / f"{args.name}.json"
    target.write_text(json.dumps(portable(data, start), indent=1) + "\n")
    print(f"wrote {target}: {len(data['snapshots'])} snapshots, {len(data['events'])} events")


if __name__ == "__main__":
    main()
