"""CLI start-up: `schnitzel validate` on a small graph, against the interpreter alone and
against importing its two heavy dependencies, measured in the same run.

Goal: below 150 ms for `schnitzel validate` on a small graph, excluding interpreter start.
Run: .venv/bin/python bench/bench_startup.py
"""

from __future__ import annotations

import compileall
import statistics
import subprocess
import sys
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


def main() -> None:
    # An installed wheel has its bytecode compiled by pip; an editable checkout run with
    # PYTHONDONTWRITEBYTECODE=1 (as on these machines) would recompile every module on
    # every run. Compile once so the figure is what a deployed box sees.
    for package in ("schnitzel", "plugins", "tui"):
        compileall.compile_dir(ROOT / package, quiet=1)
    samples: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(ROUNDS):  # interleaved, so machine noise hits every command alike
        for name, cmd in COMMANDS.items():
            start = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            samples[name].append(time.perf_counter() - start)
    median = {name: statistics.median(times) for name, times in samples.items()}
    base = median["python -c pass"]
    print(f"start-up, median of {ROUNDS} interleaved runs")
    for name, value in median.items():
        print(f"  {name:26s} {value * 1e3:6.1f} ms  (+{(value - base) * 1e3:6.1f} ms over python)")
    ours = median["schnitzel validate demo"] - base
    deps = median["deps as validate uses them"] - base
    print(
        f"  validate excluding interpreter start: {ours * 1e3:.0f} ms (goal < 150 ms); "
        f"the dependencies as it uses them take {deps * 1e3:.0f} ms of that, schnitzel's own "
        f"code {(ours - deps) * 1e3:.0f} ms ({ours / deps:.2f}x the dependencies alone)"
    )


if __name__ == "__main__":
    main()
