"""`schnitzel validate GRAPH [--json]`."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

from schnitzel.errors import GraphLoadError
from schnitzel.launch.output import print_json, print_table, say
from schnitzel.launch.start_up_heap import paused_gc
from schnitzel.registry.pydantic_plugins import skip_empty_plugin_discovery
from schnitzel.registry.registry import stdout_to_stderr
from schnitzel.spec.yaml_source import LIMITS
from schnitzel.validate.graph import ValidatedGraph
from schnitzel.validate.problems import ValidationReport
from schnitzel.validate.validator import ValidationResult, validate_bytes, validate_file

__all__ = ["print_problems", "report_json", "run_validate", "validate_argument"]

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


def validate_argument(graph: str) -> ValidationResult:
    """Validate a file path, or standard input for `-`. Raises GraphLoadError if unreadable."""
    skip_empty_plugin_discovery()  # a CLI process: the stand-in serves it to its end
    with paused_gc():
        if graph != "-":
            return validate_file(Path(graph))
        return validate_bytes(sys.stdin.buffer.read(LIMITS.max_bytes + 1), source="<stdin>")


def run_validate(graph: str, as_json: bool = False, prog: str = "schnitzel validate") -> int:
    """Print the report; 0 valid, 1 invalid, 2 when the file cannot be read."""
    try:
        # stdout carries the JSON report alone: what a plugin prints, or writes to file
        # descriptor 1 itself (a native library), goes to stderr
        with stdout_to_stderr() if as_json else contextlib.nullcontext():
            result = validate_argument(graph)
    except GraphLoadError as exc:
        if as_json:
            print_json({"valid": False, "graph": graph, "error": str(exc)})
        say(f"{prog}: {exc}", err=True)
        return EXIT_USAGE
    if as_json:
        print_json(report_json(result.report, result.graph))
    else:
        print_report(result.report, result.graph)
    return EXIT_OK if result.report.valid else EXIT_INVALID


def report_json(report: ValidationReport, graph: ValidatedGraph | None) -> dict[str, Any]:
    """The JSON form of a validation report (docs/contracts/cli.md)."""
    out: dict[str, Any] = {
        "valid": report.valid,
        "graph": report.source,
        "errors": len(report.errors),
        "warnings": len(report.warnings),
        "problems": [p.to_json() for p in report.sorted_problems()],
    }
    if graph is not None:
        out["nodes"] = [
            {
                "id": node.id,
                "kind": node.spec.kind,
                "plugin": node.plugin.name,
                "emits": _kinds(node),
                "profile": node.output.profile.value if node.output else None,
            }
            for node in graph.nodes.values()
        ]
        out["edges"] = [
            {"from": f"{e.source}.{e.source_port}", "to": f"{e.target}.{e.target_port}"}
            for e in graph.edges
        ]
    return out


def print_problems(report: ValidationReport, err: bool = False) -> None:
    """Each problem (errors and warnings), one per line with its hint."""
    for problem in report.sorted_problems():
        say(problem.render(), err=err)


def print_report(report: ValidationReport, graph: ValidatedGraph | None) -> None:
    print_problems(report)
    counts = f"{_count(len(report.errors), 'error')}, {_count(len(report.warnings), 'warning')}"
    if graph is None:
        say(f"{report.source}: invalid ({counts}); nothing was run")
        return
    say(
        f"{report.source}: valid ({_count(len(graph.nodes), 'node')}, "
        f"{_count(len(graph.edges), 'edge')}, {counts})"
    )
    rows = [
        (
            node.id,
            node.spec.kind,
            node.plugin.name,
            _kinds(node) or "-",
            node.output.profile.value if node.output else "-",
        )
        for node in graph.nodes.values()
    ]
    print_table(("node", "kind", "plugin", "emits", "profile"), rows, indent="  ")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'s' * (number != 1)}"


def _kinds(node: Any) -> str | None:
    if node.output is None:
        return None
    return "any" if node.output.kinds is None else ",".join(sorted(node.output.kinds))
