"""Bytecode of the project's packages, written before any test starts a process.

The suite starts hundreds of `schnitzel` and `schnitzel-tui` processes. Where
PYTHONDONTWRITEBYTECODE=1 is set (as on these machines and in CI) no process writes the
`__pycache__` files of what it imports, so every one of them compiled every module of
schnitzel, its plugins and the console from source again: about 40% of the instructions of a
short `schnitzel run` (bench/bench_pipeline.py compiles first for the same reason). The
variable still keeps the processes from writing; compiling here writes the files once.
"""

from __future__ import annotations

import compileall
import sys
from pathlib import Path

PACKAGES = ("schnitzel", "tui", "plugins", "tests")
"""The repository's folders of Python code, relative to its root."""


def compile_the_packages(repo: Path) -> None:
    """Write the bytecode of every module under `PACKAGES` that is missing or older than its
    source (a second call checks timestamps only), and let pytest cache the test modules it
    rewrites for its assertions: each xdist worker would otherwise rewrite all of them."""
    for package in PACKAGES:
        compileall.compile_dir(repo / package, quiet=1)
    sys.dont_write_bytecode = False
