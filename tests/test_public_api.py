"""`import schnitzel` names what plugin authors use, and every name it lists resolves."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import subprocess
import sys
from pathlib import Path

import schnitzel


def test_every_exported_name_resolves() -> None:
    for name in schnitzel.__all__:
        module = importlib.import_module(schnitzel._EXPORTS[name])
        assert getattr(schnitzel, name) is getattr(module, name), name


def test_export_lists_agree() -> None:
    source = Path(schnitzel.__file__).read_text()
    tree = ast.parse(source)
    type_checking = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("schnitzel.")
        for alias in node.names
    }
    assert set(schnitzel._EXPORTS) == set(schnitzel.__all__)
    assert len(schnitzel.__all__) == len(set(schnitzel.__all__))
    assert type_checking == set(schnitzel.__all__)


def test_unknown_name_says_so() -> None:
    try:
        schnitzel.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "has no attribute 'NoSuchThing'" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_importing_schnitzel_does_not_import_pydantic_or_yaml() -> None:
    code = "import sys, schnitzel; print('pydantic' in sys.modules, 'yaml' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_the_exported_validation_records_keep_the_dataclass_api_they_were_released_with() -> None:
    graph = (
        "version: 2\nnodes:\n"
        "  - {id: src, kind: source, plugin: synthetic, config: {count: 1}}\n"
        "  - {id: out, kind: sink, plugin: 'null'}\n"
        "edges:\n  - {from: src, to: out}\n"
    )
    valid = schnitzel.validate_text(graph)
    assert valid.graph is not None
    invalid = schnitzel.validate_text(graph.replace("plugin: 'null'", "plugin: nope"))
    problem = invalid.report.problems[0]
    # what a tool written against plugin API 1.1 may do with what the validator returns
    assert dataclasses.replace(problem, hint="ask the operator").hint == "ask the operator"
    assert dataclasses.asdict(invalid)["graph"] is None
    assert dataclasses.replace(valid.graph, path=None).path is None
    registered = schnitzel.PluginRegistry.from_entry_points().plugins()[0]
    assert dataclasses.replace(registered, pack="mine").pack == "mine"
