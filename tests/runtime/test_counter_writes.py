"""A node's counters change only through `NodeMetrics` methods named for what happened: no
module assigns to them directly (so every change can be found by name, and the methods keep
`received`, `dropped` and the rest adding up; `assert_counts_add_up` checks the sums)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COUNTERS = {
    "abandoned",
    "crashed",
    "delivered",
    "depth_max",
    "dropped",
    "emitted",
    "errors",
    "filtered",
    "processed",
    "received",
}
OWNER = ROOT / "schnitzel" / "runtime" / "metrics.py"


def _is_metrics(node: ast.expr) -> bool:
    """`metrics`, `self.metrics`, `node.inbox.metrics`, ...: a NodeMetrics by its name."""
    if isinstance(node, ast.Name):
        return node.id == "metrics"
    return isinstance(node, ast.Attribute) and node.attr == "metrics"


def direct_writes(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        for written in targets:
            # metrics.dropped[reason] = ... writes `dropped` too
            target = written.value if isinstance(written, ast.Subscript) else written
            if (
                isinstance(target, ast.Attribute)
                and target.attr in COUNTERS
                and _is_metrics(target.value)
            ):
                where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
                found.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_module_writes_a_node_counter_directly() -> None:
    files = [
        path
        for folder in ("schnitzel", "plugins", "tui")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path != OWNER
    ]
    assert files
    writes = [write for path in files for write in direct_writes(path)]
    assert writes == [], "use the NodeMetrics method named for what happened:\n" + "\n".join(writes)


def test_the_guard_finds_a_direct_write(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def f(node, metrics):\n    node.metrics.emitted += 1\n    metrics.dropped['x'] = 1\n"
        "    outcome.filtered += 1\n",
        encoding="utf-8",
    )
    assert len(direct_writes(sample)) == 2  # not `outcome.filtered`: not a NodeMetrics
