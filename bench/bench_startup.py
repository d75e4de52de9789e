"""CLI start-up: `schnitzel validate graphs/demo.yaml` and `schnitzel ctl status` (against a
live runtime started here) as whole processes, against the interpreter alone and against
importing validate's two heavy dependencies, measured in the same run.

Goal (issue 18): each command at most 200 ms as a whole process. `schnitzel run` of a
two-node graph of ten packets is timed too (the start-up part of goal 2's whole-process figure).
`--before DIR`: also time the commands with the packages of an older checkout laid out in DIR
(`schnitzel/`, `schnitzel_plugins/`, `schnitzel_tui/`, and a `sitecustomize.py` that drops the
editable install's finder), interleaved with this checkout's.
`--instructions`: also count the instructions each command executes, once, under valgrind
(callgrind): unlike time, the count hardly moves when the machine is busy.
Run: .venv/bin/python bench/bench_startup.py [--before DIR] [--instructions]
"""

from __future__ import annotations

import argparse
import compileall
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 15

DEPS_AS_USED = r"""
import yaml
from importlib.metadata import entry_points
from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator
class M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    n: StrictInt = Field(default=1, ge=1)
    s: str = Field(default="x", pattern="^[a-z]+$")
    @field_validator("s")
    @classmethod
    def v(cls, value): return value
M.model_validate(yaml.load("n: 2\ns: abc\n", Loader=yaml.CSafeLoader))
list(entry_points(group="schnitzel.plugins"))
"""

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "import pydantic+yaml": [sys.executable, "-c", "import pydantic, yaml; pydantic.BaseModel"],
    # The dependencies' share of a validation: one strict model built and used, one YAML
    # document loaded, one entry-point scan. What is left above this is schnitzel's own.
    "deps as validate uses them": [sys.executable, "-c", DEPS_AS_USED],
    "schnitzel --version": [sys.executable, "-m", "schnitzel.cli.main", "--version"],
    "schnitzel validate demo": [
        sys.executable,
        "-m",
        "schnitzel.cli.main",
        "validate",
        str(ROOT / "graphs/demo.yaml"),
    ],
}


TINY = """version: 2
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {count: 10}}
  - {id: out, kind: sink, plugin: "null"}
edges: [{from: src, to: out}]
"""
"""`schnitzel run` of this: start-up, ten packets, the run report, exit."""

ENDLESS = """version: 2
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {rate_hz: 20.0}}
  - {id: out, kind: sink, plugin: "null"}
edges: [{from: src, to: out}]
"""


def start_runtime(directory: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """A `schnitzel run` serving a control socket, once it answers."""
    graph, socket = directory / "endless.yaml", directory / "ctl.sock"
    graph.write_text(ENDLESS)
    state = directory / "state"
    cli = [sys.executable, "-m", "schnitzel.cli.main"]
    run = subprocess.Popen(
        [*cli, "run", str(graph), "--control-socket", str(socket), "--state-dir", str(state)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    status = [*cli, "ctl", "--socket", str(socket), "status"]
    deadline = time.monotonic() + 60
    while subprocess.run(status, capture_output=True, check=False).returncode != 0:
        if run.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the runtime for `ctl status` did not start")
        time.sleep(0.1)
    return run, socket


def main() -> None:
    parser = argparse.ArgumentParser(description="CLI start-up against python -c pass")
    parser.add_argument("--before", type=Path, help="an older checkout's packages (see above)")
    parser.add_argument(
        "--instructions", action="store_true", help="count instructions under valgrind too"
    )
    args = parser.parse_args()
    if args.instructions and shutil.which("valgrind") is None:
        parser.error("--instructions needs valgrind (apt-get install valgrind)")
    # An installed wheel has its bytecode compiled by pip; an editable checkout run with
    # PYTHONDONTWRITEBYTECODE=1 (as on these machines) would recompile every module on
    # every run. Compile once so the figure is what a deployed box sees.
    for package in ("schnitzel", "plugins", "tui"):
        compileall.compile_dir(ROOT / package, quiet=1)
    if args.before:
        compileall.compile_dir(args.before, quiet=1)
    directory = Path(tempfile.mkdtemp(prefix="sz-", dir="/tmp"))  # a short socket path
    run, socket = start_runtime(directory)
    here = (None, ROOT)
    commands: dict[str, tuple[list[str], tuple[dict[str, str] | None, Path]]] = {
        name: (cmd, here) for name, cmd in COMMANDS.items()
    }
    ctl = [sys.executable, "-m", "schnitzel.cli.main", "ctl", "--socket", str(socket), "status"]
    commands["schnitzel ctl status"] = (ctl, here)
    tiny = directory / "tiny.yaml"
    tiny.write_text(TINY)
    run_tiny = [sys.executable, "-m", "schnitzel.cli.main", "run", str(tiny)]
    commands["schnitzel run tiny"] = ([*run_tiny, "--state-dir", str(directory / "s")], here)
    if args.before:
        # run from the older tree too: `python -m` puts the working directory first on the path
        before = args.before.resolve()
        before_env = {**os.environ, "PYTHONPATH": str(before)}
        for name in ("schnitzel validate demo", "schnitzel ctl status", "schnitzel run tiny"):
            commands[f"{name} (before)"] = (commands[name][0], (before_env, before))
    instructions: dict[str, int] = {}
    samples: dict[str, list[float]] = {name: [] for name in commands}
    cpu_samples: dict[str, list[float]] = {name: [] for name in commands}
    try:
        for _ in range(ROUNDS):  # interleaved, so machine noise hits every command alike
            for name, (cmd, (env, cwd)) in commands.items():
                cpu_start = _children_cpu_s()
                start = time.perf_counter()
                subprocess.run(
                    cmd,
                    check=True,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env=env,
                    cwd=cwd,
                )
                samples[name].append(time.perf_counter() - start)
                cpu_samples[name].append(_children_cpu_s() - cpu_start)
        if args.instructions:
            for name, (cmd, (cmd_env, cwd)) in commands.items():
                instructions[name] = _instructions(cmd, cmd_env, cwd)
    finally:
        run.send_signal(signal.SIGTERM)
        run.wait(timeout=60)
        shutil.rmtree(directory, ignore_errors=True)
    median = {name: statistics.median(times) for name, times in samples.items()}
    cpu = {name: statistics.median(times) for name, times in cpu_samples.items()}
    base = median["python -c pass"]
    print(
        f"start-up, whole processes, median of {ROUNDS} interleaved runs: wall time, and the "
        "CPU time (user + system) of the process, which a busy machine inflates less"
    )
    for name, value in median.items():
        print(
            f"  {name:35s} {value * 1e3:6.1f} ms  (+{(value - base) * 1e3:6.1f} ms over python)"
            f"  cpu {cpu[name] * 1e3:6.1f} ms ({cpu[name] / cpu['python -c pass']:.1f}x python)"
        )
    ours = median["schnitzel validate demo"] - base
    deps = median["deps as validate uses them"] - base
    print(
        f"  validate excluding interpreter start: {ours * 1e3:.0f} ms; the dependencies as it "
        f"uses them take {deps * 1e3:.0f} ms of that, schnitzel's own code "
        f"{(ours - deps) * 1e3:.0f} ms ({ours / deps:.2f}x the dependencies alone)"
    )
    for name in ("schnitzel validate demo", "schnitzel ctl status"):
        print(
            f"  -> {name}: {median[name] * 1e3:.0f} ms whole process, cpu "
            f"{cpu[name] * 1e3:.0f} ms (goal <= 200 ms)"
        )
    for name in ("schnitzel validate demo", "schnitzel ctl status", "schnitzel run tiny"):
        if f"{name} (before)" in median:
            print(
                f"  -> {name} against before: wall {median[name] / median[f'{name} (before)']:.2f}x"
                f", cpu {cpu[name] / cpu[f'{name} (before)']:.2f}x"
            )

    if instructions:
        python = instructions["python -c pass"]
        print("instructions executed (valgrind), one run each")
        for name, count in instructions.items():
            print(f"  {name:35s} {count / 1e6:8.1f} M  ({count / python:.2f}x python)")
        for name in ("schnitzel validate demo", "schnitzel ctl status", "schnitzel run tiny"):
            if f"{name} (before)" in instructions:
                ratio = instructions[name] / instructions[f"{name} (before)"]
                print(f"  -> {name} against before: {ratio:.2f}x the instructions")


def _instructions(cmd: list[str], env: dict[str, str] | None, cwd: Path) -> int:
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *cmd],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=True,
    )
    counted = re.search(r"Collected : (\d+)", done.stderr)
    if counted is None:
        raise SystemExit(f"valgrind printed no instruction count for {cmd}: {done.stderr}")
    return int(counted.group(1))


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
