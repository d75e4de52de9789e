"""Validation of large graphs, against parsing the same file alone, in one run.

Baseline: `yaml.load` with libyaml's C loader — the least any tool must do to read the file.
The ratio says what all of schnitzel's checks cost on top of reading.
Run: .venv/bin/python bench/bench_validate.py
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from _timing import best_of
from graph_gen import large_graph_yaml

from schnitzel.launch.start_up_heap import paused_gc
from schnitzel.registry import PluginRegistry
from schnitzel.validate import validate_text


def main() -> None:
    registry = PluginRegistry.from_entry_points()
    print("validation (best of 5; the registry is loaded once, as the CLI does per run)")
    for size in (500, 5000):
        text = large_graph_yaml(size)
        result = validate_text(text, registry=registry)
        assert result.graph is not None, result.report.problems[:3]
        count = len(result.graph.nodes)
        with paused_gc():  # as `schnitzel validate` runs it
            ours = best_of(lambda text=text: validate_text(text, registry=registry))
        parse = best_of(lambda text=text: yaml.load(text, Loader=yaml.CSafeLoader))
        gc.disable()
        parse_no_gc = best_of(lambda text=text: yaml.load(text, Loader=yaml.CSafeLoader))
        gc.enable()
        print(
            f"  {count:5d} nodes ({len(text) / 1024:4.0f} KiB): validate {ours * 1e3:6.1f} ms "
            f"({ours / count * 1e6:3.0f} us/node) | C YAML parse alone {parse * 1e3:6.1f} ms "
            f"(ratio {ours / parse:3.1f}x), with GC paused {parse_no_gc * 1e3:6.1f} ms "
            f"(ratio {ours / parse_no_gc:3.1f}x)"
        )


if __name__ == "__main__":
    main()
