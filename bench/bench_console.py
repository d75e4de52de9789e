"""The console's cost: throughput with it on, bytes it writes to the terminal, frame time.

Each figure is read against a baseline measured in the same run (the machine is shared and
noisy, so no absolute figure is a verdict on its own):

1. Throughput of a busy graph (endless `synthetic` without a rate limit -> passthrough x3 ->
   null) for a fixed `--duration`: `schnitzel run` headless against `schnitzel-tui` at its
   default refresh (1 s), both inside a real pseudo-terminal of 100x30 whose output is read
   and counted. packets/s = the report's `totals.delivered / duration_s`; best of several
   interleaved rounds. Also the CPU seconds each process used (from `wait4`).
   Goal: the console costs at most 10% (console/headless >= 0.90).
   The console stays open when a run ends by `--duration` (the operator reads the result);
   the bench waits for `(duration)` on the screen and then presses `q`.
2. Bytes written to the terminal per second (what an SSH link carries), read from the pty
   master over a window that starts a few seconds after the first frame showing the run
   (start-up, the first full paint and the re-layout of the first polls left out): at idle
   (a source at 1 packet/s: little changes) and under load (the busy graph), at the default
   local refresh (1 s) and with SSH_CONNECTION set (refresh 2 s, at most 10 frames/s).
   Baseline: `top -d 1`, the classic interactive monitor at the same 1 s refresh in the same
   100x30 terminal (curses draws only what changed too). A figure to keep low, not a goal.
   `schnitzel run` headless writes next to nothing (item 1 shows its bytes/s).
3. Frame time with 50 nodes, in-process: `ConsoleApp.run_test(size=(160, 50))` over a real
   `Runtime` (EmbeddedSource(RuntimeControl(runtime))) running a generated 50-node graph of
   rate-limited sources, chains, fan-in and fan-out. A frame = `app.poll()` (snapshot, events,
   model, widget updates) + processing the messages it caused + the screen update that
   composes the changed regions (what `Pilot.pause()` does, without its wait for the CPU
   to go idle, which never happens while a graph runs on the same loop). Frames are 0.25 s
   apart, so about one in four follows a metrics tick (new rates in every cell). Median and
   p95 against the same with a 5-node graph, and `RuntimeControl.snapshot()` alone. The
   headless driver of `run_test` skips turning the update into escape sequences; a full
   repaint turned into escape sequences is timed on its own.

Run: .venv/bin/python bench/bench_console.py [--quick]
(`--quick`: shorter runs and fewer rounds; finishes in about a minute.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import itertools
import json
import os
import pty
import shutil
import signal
import statistics
import struct
import sys
import tempfile
import termios
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _timing import print_summary, timed

from schnitzel.control.runtime_control import RuntimeControl
from schnitzel.runtime import Runtime
from schnitzel.validate import validate_text
from schnitzel_tui.app import ConsoleApp
from schnitzel_tui.source import EmbeddedSource

BIN = Path(sys.executable).parent
SCHNITZEL = BIN / "schnitzel"
SCHNITZEL_TUI = BIN / "schnitzel-tui"
COLUMNS, ROWS = 100, 30
SSH_CONNECTION = "192.0.2.10 50022 192.0.2.1 22"
"""What sshd sets (client address and port, server address and port); only its presence counts."""


@dataclass(frozen=True)
class Sizes:
    """How long each item runs (`--quick` shrinks everything)."""

    duration_s: float
    rounds: int
    settle_s: float
    window_s: float
    frames: int


FULL = Sizes(duration_s=5.0, rounds=3, settle_s=3.0, window_s=10.0, frames=80)
QUICK = Sizes(duration_s=2.0, rounds=2, settle_s=2.5, window_s=3.0, frames=12)
FRAME_SPACING_S = 0.25


# -- graphs ------------------------------------------------------------------------------------


def graph_text(nodes: list[str], edges: list[tuple[str, str]]) -> str:
    lines = ["version: 2", "nodes:", *(f"  - {node}" for node in nodes), "edges:"]
    lines += [f"  - {{from: {a}, to: {b}}}" for a, b in edges]
    return "\n".join(lines) + "\n"


def source(node_id: str, rate_hz: float | None = None) -> str:
    rate = f", rate_hz: {float(rate_hz)}" if rate_hz is not None else ""
    return (
        f"{{id: {node_id}, kind: source, plugin: synthetic, config: {{payload: {{v: 1}}{rate}}}}}"
    )


def passthrough(node_id: str) -> str:
    return f"{{id: {node_id}, kind: transform, plugin: passthrough}}"


def sample(node_id: str) -> str:
    return f"{{id: {node_id}, kind: transform, plugin: sample, config: {{every: 2}}}}"


def null_sink(node_id: str) -> str:
    return f'{{id: {node_id}, kind: sink, plugin: "null"}}'


def chain_graph(rate_hz: float | None, stages: int = 3) -> str:
    """`synthetic -> passthrough x stages -> null`: the busy graph (no rate) or the idle one."""
    ids = ["src", *(f"p{i}" for i in range(1, stages + 1)), "out"]
    nodes = [source("src", rate_hz), *(passthrough(i) for i in ids[1:-1]), null_sink("out")]
    return graph_text(nodes, list(itertools.pairwise(ids)))


def fifty_node_graph(rate_hz: float = 500.0) -> str:
    """50 nodes: 6 sources, each into a chain of 5 (passthrough and sample), chains merged in
    pairs (fan-in), each merge fanning out to 2 sinks and into one last merge that fans out
    to 4 sinks."""
    nodes: list[str] = []
    edges: list[tuple[str, str]] = []
    for s in range(6):
        previous = f"src{s}"
        nodes.append(source(previous, rate_hz))
        for i in range(5):
            node_id = f"c{s}n{i}"
            nodes.append(sample(node_id) if i == 2 else passthrough(node_id))
            edges.append((previous, node_id))
            previous = node_id
        edges.append((previous, f"merge{s // 2}"))
    for m in range(3):
        nodes.append(passthrough(f"merge{m}"))
        for k in range(2):
            nodes.append(null_sink(f"out{m}{k}"))
            edges.append((f"merge{m}", f"out{m}{k}"))
        edges.append((f"merge{m}", "all"))
    nodes.append(passthrough("all"))
    for k in range(4):
        nodes.append(null_sink(f"final{k}"))
        edges.append(("all", f"final{k}"))
    assert len(nodes) == 50, len(nodes)
    return graph_text(nodes, edges)


# -- a command in a pseudo-terminal ------------------------------------------------------------


def terminal_env(state_dir: Path, over_ssh: bool) -> dict[str, str]:
    """TERM as a 256-colour terminal says; no COLORTERM (SSH does not forward it); the size
    only from the tty."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"COLORTERM", "SSH_CONNECTION", "COLUMNS", "LINES", "NO_COLOR"}
        and not k.startswith("TEXTUAL_")
    }
    env.update(TERM="xterm-256color", SCHNITZEL_STATE_DIR=str(state_dir))
    if over_ssh:
        env["SSH_CONNECTION"] = SSH_CONNECTION
    return env


class PtyRun:
    """A command in a pseudo-terminal of COLUMNS x ROWS; a thread reads everything it writes
    (keeping it, with the time each chunk arrived)."""

    def __init__(self, command: list[str], env: dict[str, str], cwd: Path) -> None:
        self.output = bytearray()
        self.chunks: list[tuple[float, int]] = []
        self.started = time.monotonic()
        self.rusage: Any = None
        self.exit_code: int | None = None
        pid, fd = pty.fork()
        if pid == 0:  # the child: session leader with the pty as its controlling terminal
            try:
                fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
                os.chdir(cwd)
                os.execve(command[0], command, env)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 65536)
            except OSError:  # EIO: every slave side is closed, the command has ended
                return
            if not data:
                return
            now = time.monotonic()
            with self._lock:
                self.output += data
                self.chunks.append((now, len(data)))

    def bytes_per_s(self, first_shown: bytes, settle_s: float, window_s: float) -> float:
        """Bytes per second written over `window_s`, from `settle_s` after `first_shown` was
        first written (start-up and the first full paint left out)."""
        self.wait_for_output(first_shown, 60)
        start = self._first_time(first_shown) + settle_s
        end = start + window_s
        time.sleep(max(0.0, end - time.monotonic()))
        with self._lock:
            return sum(n for t, n in self.chunks if start <= t < end) / window_s

    def _first_time(self, text: bytes) -> float:
        """When the chunk that completed the first `text` arrived."""
        with self._lock:
            index = self.output.find(text) + len(text)
            total = 0
            for t, n in self.chunks:
                total += n
                if total >= index:
                    return t
        raise AssertionError("unreachable: the text was shown")

    def shows(self, text: bytes) -> bool:
        with self._lock:
            return text in self.output

    def wait_for_output(self, text: bytes, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.shows(text):
            if time.monotonic() > deadline or self.exit_code is not None or self.poll():
                raise RuntimeError(f"{text!r} did not show within {timeout_s:g} s{self.tail()}")
            time.sleep(0.05)

    def press(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signum)

    def poll(self) -> bool:
        """True once the command has ended (its exit code and rusage are then kept)."""
        if self.exit_code is not None:
            return True
        pid, status, rusage = os.wait4(self.pid, os.WNOHANG)
        if pid == 0:
            return False
        self.exit_code = os.waitstatus_to_exitcode(status)
        self.rusage = rusage
        self._reader.join(2.0)
        os.close(self.fd)
        return True

    def wait(self, timeout_s: float) -> int:
        deadline = time.monotonic() + timeout_s
        while not self.poll():
            if time.monotonic() > deadline:
                self.signal(signal.SIGKILL)
                raise RuntimeError(f"the command did not end within {timeout_s:g} s{self.tail()}")
            time.sleep(0.02)
        assert self.exit_code is not None
        return self.exit_code

    @property
    def cpu_s(self) -> float:
        return self.rusage.ru_utime + self.rusage.ru_stime

    def tail(self) -> str:
        with self._lock:
            return "; last output: " + self.output[-400:].decode(errors="replace")


class Workspace:
    """A temporary directory for graph files, reports and state."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state = root / "state"
        self._reports = itertools.count()

    def graph(self, name: str, text: str) -> Path:
        path = self.root / f"{name}.yaml"
        path.write_text(text)
        return path

    def report_path(self) -> Path:
        return self.root / f"report-{next(self._reports)}.json"


# -- 1: throughput -----------------------------------------------------------------------------


@dataclass
class Round:
    rate: float
    cpu_s: float
    bytes_per_s: float


def run_headless(ws: Workspace, graph: Path, sizes: Sizes) -> Round:
    report = ws.report_path()
    command = [str(SCHNITZEL), "run", str(graph), "--duration", str(sizes.duration_s)]
    run = PtyRun([*command, "--report-json", str(report)], terminal_env(ws.state, False), ws.root)
    code = run.wait(sizes.duration_s + 60)
    assert code == 0, f"schnitzel run exited {code}{run.tail()}"
    return read_round(report, run)


def run_console(ws: Workspace, graph: Path, sizes: Sizes) -> Round:
    report = ws.report_path()
    command = [str(SCHNITZEL_TUI), str(graph), "--duration", str(sizes.duration_s)]
    run = PtyRun([*command, "--report-json", str(report)], terminal_env(ws.state, False), ws.root)
    run.wait_for_output(b"(duration)", sizes.duration_s + 60)
    run.press(b"q")  # the run has ended: q closes the console at once
    code = run.wait(30)
    assert code == 0, f"schnitzel-tui exited {code}{run.tail()}"
    return read_round(report, run)


def read_round(report_path: Path, run: PtyRun) -> Round:
    report = json.loads(report_path.read_text())
    assert report["stop_reason"] == "duration", report["stop_reason"]
    totals = report["totals"]
    assert totals["dropped"] == 0 and totals["errors"] == 0, totals
    elapsed = time.monotonic() - run.started
    return Round(totals["delivered"] / report["duration_s"], run.cpu_s, len(run.output) / elapsed)


@dataclass
class Throughput:
    headless: list[Round] = field(default_factory=list)
    console: list[Round] = field(default_factory=list)

    @property
    def best_headless(self) -> float:
        return max(r.rate for r in self.headless)

    @property
    def best_console(self) -> float:
        return max(r.rate for r in self.console)

    @property
    def ratio(self) -> float:
        return self.best_console / self.best_headless


def throughput(ws: Workspace, sizes: Sizes) -> Throughput:
    graph = ws.graph("busy", chain_graph(None))
    result = Throughput()
    for _ in range(sizes.rounds):  # interleaved: machine noise hits both alike
        result.headless.append(run_headless(ws, graph, sizes))
        result.console.append(run_console(ws, graph, sizes))
    print(
        f"1. throughput: endless src -> pass x3 -> null, --duration {sizes.duration_s:g} s, "
        f"{COLUMNS}x{ROWS} pty, best of {sizes.rounds} interleaved rounds"
    )
    for name, rounds in (
        ("schnitzel run (headless)", result.headless),
        ("schnitzel-tui", result.console),
    ):
        print(
            f"  {name:<26}{max(r.rate for r in rounds):>11,.0f} packets/s  (rounds: "
            + ", ".join(f"{r.rate:,.0f}" for r in rounds)
            + f"; CPU {statistics.median(r.cpu_s for r in rounds):.1f} s per run, "
            f"{statistics.median(r.bytes_per_s for r in rounds):,.0f} B/s to the terminal)"
        )
    print(f"  -> console/headless {result.ratio:.3f} (goal >= 0.90: the console costs <= 10%)")
    return result


# -- 2: bytes to the terminal ------------------------------------------------------------------


@dataclass
class Bandwidth:
    name: str
    bytes_per_s: float
    delivered_per_s: float | None


def console_bandwidth(
    ws: Workspace, name: str, graph: Path, over_ssh: bool, sizes: Sizes
) -> Bandwidth:
    report = ws.report_path()
    run = PtyRun(
        [str(SCHNITZEL_TUI), str(graph), "--report-json", str(report)],
        terminal_env(ws.state, over_ssh),
        ws.root,
    )
    rate = run.bytes_per_s(b"running", sizes.settle_s, sizes.window_s)
    run.signal(signal.SIGTERM)  # while running: drain, then the console closes
    code = run.wait(60)
    assert code == 0, f"schnitzel-tui exited {code}{run.tail()}"
    report_data = json.loads(report.read_text())
    return Bandwidth(name, rate, report_data["totals"]["delivered"] / report_data["duration_s"])


def top_bandwidth(ws: Workspace, sizes: Sizes) -> Bandwidth | None:
    top = shutil.which("top")
    if top is None:
        return None
    run = PtyRun([top, "-d", "1"], terminal_env(ws.state, False), ws.root)
    rate = run.bytes_per_s(b"load average", sizes.settle_s, sizes.window_s)
    run.press(b"q")
    run.wait(10)
    return Bandwidth("top -d 1 (baseline)", rate, None)


def bandwidth(ws: Workspace, sizes: Sizes) -> list[Bandwidth]:
    idle = ws.graph("idle", chain_graph(1.0))
    busy = ws.graph("busy", chain_graph(None))
    rows = [
        console_bandwidth(ws, "idle, local (refresh 1 s)", idle, False, sizes),
        console_bandwidth(ws, "idle, SSH (refresh 2 s)", idle, True, sizes),
        console_bandwidth(ws, "load, local (refresh 1 s)", busy, False, sizes),
        console_bandwidth(ws, "load, SSH (refresh 2 s)", busy, True, sizes),
    ]
    baseline = top_bandwidth(ws, sizes)
    print(
        f"2. bytes to the terminal, {COLUMNS}x{ROWS} pty, TERM=xterm-256color, "
        f"{sizes.window_s:g} s from {sizes.settle_s:g} s after the first frame"
    )
    for row in rows:
        ratio = f"  ({row.bytes_per_s / baseline.bytes_per_s:.2f}x top)" if baseline else ""
        print(f"  {row.name:<28}{row.bytes_per_s:>9,.0f} B/s{ratio}")
    if baseline:
        print(f"  {baseline.name:<28}{baseline.bytes_per_s:>9,.0f} B/s")
        rows.append(baseline)
    else:
        print("  top not found: no baseline")
    return rows


# -- 3: frame time -----------------------------------------------------------------------------


@dataclass
class Frames:
    nodes: int
    frame_ms: list[float]
    cpu_ms: list[float]
    poll_ms: list[float]
    snapshot_ms: list[float]
    repaint_ms: float

    def median(self, values: list[float]) -> float:
        return statistics.median(values)

    def p95(self, values: list[float]) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


async def frame_times(ws: Workspace, name: str, text: str, sizes: Sizes) -> Frames:
    path = ws.graph(name, text)
    result = validate_text(text, source=str(path), path=path)
    assert result.graph is not None, [p.render() for p in result.report.problems]
    runtime = Runtime(result.graph, ws.state, 30.0)
    control = RuntimeControl(runtime)
    # Polls are driven by hand below: the app's own timer must not fire in between.
    app = ConsoleApp(EmbeddedSource(control), refresh_s=3600.0)
    run = asyncio.create_task(runtime.run())
    frame_ms: list[float] = []
    cpu_ms: list[float] = []
    poll_ms: list[float] = []
    snapshot_ms: list[float] = []
    perf = time.perf_counter
    async with app.run_test(size=(160, 50)) as pilot:
        await asyncio.sleep(1.2)  # two metric ticks: rates as in steady state
        await pilot.pause()
        for _ in range(sizes.frames):
            await asyncio.sleep(FRAME_SPACING_S)
            start = perf()
            control.snapshot()
            snapshot_ms.append((perf() - start) * 1e3)
            start, cpu = perf(), time.process_time()
            await app.poll()
            polled = perf()
            await pilot._wait_for_screen()  # the messages the poll caused
            app.screen._on_timer_update()  # compose and "write" the changed regions
            frame_ms.append((perf() - start) * 1e3)
            cpu_ms.append((time.process_time() - cpu) * 1e3)
            poll_ms.append((polled - start) * 1e3)
        start = perf()
        update = app.screen._compositor.render_update(full=True)
        update.render_segments(app.console)
        repaint_ms = (perf() - start) * 1e3
        snapshot = app.snapshot
        assert (
            snapshot is not None
            and snapshot.running
            and len(snapshot.nodes) == len(result.graph.nodes)
        )
    runtime.request_stop("signal", "benchmark done")
    report = await run
    assert report["totals"]["errors"] == 0, report["totals"]
    return Frames(len(result.graph.nodes), frame_ms, cpu_ms, poll_ms, snapshot_ms, repaint_ms)


def frames(ws: Workspace, sizes: Sizes) -> tuple[Frames, Frames]:
    big = asyncio.run(frame_times(ws, "fifty", fifty_node_graph(), sizes))
    small = asyncio.run(frame_times(ws, "five", chain_graph(2000.0), sizes))
    print(
        f"3. frame time, ConsoleApp.run_test(size=(160, 50)) on a running Runtime, "
        f"{sizes.frames} frames {FRAME_SPACING_S:g} s apart (ms)"
    )
    for f in (big, small):
        print(
            f"  {f.nodes:>2} nodes: frame median {f.median(f.frame_ms):6.2f} "
            f"p95 {f.p95(f.frame_ms):6.2f} (CPU median {f.median(f.cpu_ms):6.2f}) | "
            f"poll() median {f.median(f.poll_ms):6.2f} | "
            f"snapshot() median {f.median(f.snapshot_ms):5.3f} | "
            f"full repaint to escape sequences {f.repaint_ms:6.2f}"
        )
    median_ratio = big.median(big.frame_ms) / small.median(small.frame_ms)
    p95_ratio = big.p95(big.frame_ms) / small.p95(small.frame_ms)
    print(
        f"  -> 50 nodes / 5 nodes: median {median_ratio:.2f}x, p95 {p95_ratio:.2f}x; at the "
        f"default 1 s refresh a 50-node frame takes {big.median(big.cpu_ms) / 10:.1f}% of one "
        f"core and holds the shared event loop for {big.p95(big.frame_ms):.0f} ms (p95)"
    )
    return big, small


# -- summary -----------------------------------------------------------------------------------


def summary(t: Throughput, bw: list[Bandwidth], big: Frames, small: Frames) -> None:
    base = next((b for b in bw if b.delivered_per_s is None), None)
    rows: list[tuple[str, ...]] = [
        (
            "1 throughput, console vs headless",
            f"{t.best_console:,.0f}/s",
            f"{t.best_headless:,.0f}/s",
            f"{t.ratio:.3f}",
            ">= 0.90",
            "met" if t.ratio >= 0.9 else "MISSED",
        )
    ]
    for b in bw:
        if b.delivered_per_s is None:
            continue
        rows.append(
            (
                f"2 bytes/s, {b.name}",
                f"{b.bytes_per_s:,.0f} B/s",
                f"{base.bytes_per_s:,.0f} B/s (top)" if base else "-",
                f"{b.bytes_per_s / base.bytes_per_s:.2f}x" if base else "-",
                "-",
                "-",
            )
        )
    for label, values in (("median", statistics.median), ("p95", None)):
        value_big = big.p95(big.frame_ms) if values is None else values(big.frame_ms)
        value_small = small.p95(small.frame_ms) if values is None else values(small.frame_ms)
        rows.append(
            (
                f"3 frame {label}, 50 nodes",
                f"{value_big:.2f} ms",
                f"{value_small:.2f} ms (5 nodes)",
                f"{value_big / value_small:.2f}x",
                "-",
                "-",
            )
        )
    rows.append(
        (
            "3 snapshot(), 50 nodes",
            f"{big.median(big.snapshot_ms):.3f} ms",
            f"{small.median(small.snapshot_ms):.3f} ms (5 nodes)",
            f"{big.median(big.snapshot_ms) / small.median(small.snapshot_ms):.2f}x",
            "-",
            "-",
        )
    )
    print_summary(("item", "console", "baseline", "ratio", "goal", "verdict"), rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="shorter runs, fewer rounds")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Path(tmp))
        t = timed("item 1", lambda: throughput(ws, sizes))
        bw = timed("item 2", lambda: bandwidth(ws, sizes))
        big, small = timed("item 3", lambda: frames(ws, sizes))
        summary(t, bw, big, small)


if __name__ == "__main__":
    main()
