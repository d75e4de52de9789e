"""The code blocks the docs present as complete are run here, so a reader can copy them.

A block is tested when the line right before its opening fence is a marker (an HTML comment,
invisible on GitHub):

    <!-- doc-test: python -->           run as a module of its own: imports, classes, calls
    <!-- doc-test: graph -->            a graph file: it validates without errors
    <!-- doc-test: graph CODE,CODE -->  a graph file shown for its problems: exactly these errors
    <!-- doc-test: same-as PATH -->     the exact text of PATH (a file other tests run)

Graph blocks are validated with `docs/examples` importable and `threshold_pack` allowed, as
docs/plugins.md tells its readers to run them. README's `schnitzel validate` example is
checked against the real command's output, and so is operations.md's CI script. The plugins
of docs/plugins.md's source examples (`Counter`, `Lines`) also run in a real graph, kept
beside it as `module:Class` the way a plugin author tries one first.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from schnitzel.contract.run_report import RunReport
from schnitzel.registry.registry import PluginRegistry
from schnitzel.runtime import Runtime
from schnitzel.validate import load_graph
from schnitzel.validate.validator import validate_text
from tests.conftest import REPO, SCHNITZEL

DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
MARKER = re.compile(r"^<!-- doc-test: (?P<kind>[a-z-]+)(?: (?P<arg>\S+))? -->$")
KINDS = {"python", "graph", "same-as"}
EXAMPLES = REPO / "docs" / "examples"


@dataclass(frozen=True)
class Block:
    """A marked code block: where it is, what the marker asks, and its text."""

    doc: Path
    line: int  # of the first line inside the fence
    kind: str
    arg: str | None
    text: str

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(REPO)}:{self.line}"


def marked_blocks() -> list[Block]:
    blocks = []
    for doc in DOCS:
        lines = doc.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines):
            if not (marker := MARKER.match(line.strip())):
                continue
            where = f"{doc.relative_to(REPO)}:{number + 1}"
            assert marker["kind"] in KINDS, f"{where}: unknown doc-test kind {marker['kind']!r}"
            fence = lines[number + 1] if number + 1 < len(lines) else ""
            assert fence.startswith("```"), f"{where}: a doc-test marker needs a block after it"
            end = lines.index("```", number + 2)
            text = "\n".join(lines[number + 2 : end]) + "\n"
            blocks.append(Block(doc, number + 3, marker["kind"], marker["arg"], text))
    return blocks


BLOCKS = marked_blocks()


def of_kind(kind: str) -> list[Block]:
    return [block for block in BLOCKS if block.kind == kind]


def test_the_docs_mark_their_complete_blocks() -> None:
    # Guards the extraction itself: were the markers lost, every test below would pass on
    # nothing.
    assert {block.kind for block in BLOCKS} == KINDS
    assert len(of_kind("python")) >= 4 and len(of_kind("graph")) >= 6


@pytest.mark.parametrize("block", of_kind("python"), ids=lambda b: b.where)
def test_python_block_runs(block: Block, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"doc_block_{block.doc.stem}_{block.line}".replace("-", "_")
    module = types.ModuleType(name)
    monkeypatch.setitem(sys.modules, name, module)  # pydantic resolves annotations through it
    exec(compile(block.text, block.where, "exec"), module.__dict__)


@pytest.mark.parametrize("block", of_kind("graph"), ids=lambda b: b.where)
def test_graph_block_validates(
    block: Block, registry: PluginRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.setenv("SCHNITZEL_ALLOW_MODULES", "threshold_pack")
    result = validate_text(block.text, block.where, registry, tmp_path / "graph.yaml")
    expected = sorted(block.arg.split(",")) if block.arg else []
    found = sorted(problem.code for problem in result.report.errors)
    assert found == expected, [problem.render() for problem in result.report.errors]


@pytest.mark.parametrize("block", of_kind("same-as"), ids=lambda b: b.where)
def test_block_shows_its_file_as_it_is(block: Block) -> None:
    assert block.arg is not None, f"{block.where}: same-as needs a path"
    assert block.text == (REPO / block.arg).read_text(encoding="utf-8"), (
        f"{block.where} differs from {block.arg}: copy the file into the block"
    )


def plugin_block(name: str) -> Block:
    """The python block of docs/plugins.md that defines `class <name>(`."""
    [block] = [
        b
        for b in of_kind("python")
        if b.doc.name == "plugins.md" and re.search(rf"^class {name}\(", b.text, re.M)
    ]
    return block


def run_block_plugin(tmp_path: Path, name: str, body: str, **options: int) -> RunReport:
    """Run a graph in `tmp_path` whose source is the block's class, found beside the graph."""
    module = f"doc_{name.lower()}"
    (tmp_path / f"{module}.py").write_text(plugin_block(name).text, encoding="utf-8")
    graph = tmp_path / "graph.yaml"
    graph.write_text(
        f"version: 2\nruntime: {{allow_modules: [{module}]}}\nnodes:\n"
        f"  - {{id: src, kind: source, plugin: '{module}:{name}'{body}}}\n"
        "  - {id: out, kind: sink, plugin: jsonl, config: {path: out.jsonl}}\n"
        "edges: [{from: src, to: out}]\n"
    )
    runtime = Runtime(load_graph(graph), state_dir=tmp_path / "state")
    return asyncio.run(asyncio.wait_for(runtime.run(**options), 60))


def written(tmp_path: Path) -> list[dict[str, Any]]:
    lines = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["payload"] for line in lines]


def test_the_counter_example_counts_on_where_the_last_run_stopped(tmp_path: Path) -> None:
    run_block_plugin(tmp_path, "Counter", "", max_packets=5)
    run_block_plugin(tmp_path, "Counter", "", max_packets=3)
    assert written(tmp_path) == [{"n": n} for n in range(8)]


def test_the_lines_example_reports_a_bad_line_and_reads_the_rest(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text('{"a": 1}\nnot json\n{"a": 3}\n', encoding="utf-8")
    report = run_block_plugin(tmp_path, "Lines", ", on_error: skip")
    assert written(tmp_path) == [{"a": 1}, {"a": 3}]
    [error] = report["nodes"]["src"]["recent_errors"]
    assert error["error"] == "BadRecord"
    assert error["message"].startswith("in.jsonl line 2: not JSON (")


def test_readme_validate_example_is_the_real_output(tmp_path: Path) -> None:
    """README shows the first graph with `sample` misspelt, and what validate says."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    graph = re.search(r"```yaml\n(.*?)```", readme, re.S)
    shown = re.search(r"```\n\$ schnitzel validate graph\.yaml\n(.*?)```", readme, re.S)
    assert graph and shown, "README lost its graph or its validate example"
    (tmp_path / "graph.yaml").write_text(graph[1].replace("plugin: sample", "plugin: sampel"))
    done = subprocess.run(
        [*SCHNITZEL, "validate", "graph.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout + done.stderr == shown[1]


TYPO_GRAPH = """version: 2
nodes:
  - {id: imu, kind: source, plugin: synthetic, config: {rate: 5}}
  - {id: thin, kind: transform, plugin: sampel}
  - {id: x, kind: sink, plugin: null}
edges:
  - {from: imu, to: thin}
  - {from: thin, to: archive}
"""
"""The broken graph operations.md's CI script is shown checking (graphs/typo.yaml)."""


@pytest.mark.skipif(shutil.which("jq") is None, reason="the script needs jq (.ci/run installs it)")
def test_operations_ci_script_prints_what_the_doc_shows(tmp_path: Path) -> None:
    doc = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    script = re.search(r"keeping the reports:\n\n```sh\n(.*?)```", doc, re.S)
    shown = re.search(r"which prints, for a broken graph:\n\n```\n(.*?)```", doc, re.S)
    assert script and shown, "operations.md lost its CI script or what it prints"
    (tmp_path / "graphs").mkdir()
    (tmp_path / "graphs" / "typo.yaml").write_text(TYPO_GRAPH)
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    first = re.search(r"```yaml\n(.*?)```", readme, re.S)
    assert first
    (tmp_path / "graphs" / "good.yaml").write_text(first[1])  # valid: prints nothing
    commands = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    done = subprocess.run(
        ["bash", "-c", script[1]],
        cwd=tmp_path,
        env={**os.environ, "PATH": commands},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stderr) == (1, "")
    assert done.stdout == shown[1]
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["good.json", "typo.json"]


@pytest.mark.parametrize(
    ("doc", "opening"),
    [("docs/operations.md", "(the built-in packs "), ("docs/plugins.md", "The built-in packs (")],
)
def test_docs_name_every_built_in_pack(doc: str, opening: str) -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    packs = set(project["entry-points"]["schnitzel.plugins"])
    text = " ".join((REPO / doc).read_text(encoding="utf-8").split())
    start = text.index(opening) + len(opening)
    listed = text[start : text.index(")", start)].split(" from ")[0]
    named = set(re.findall(r"`([a-z_]+)`", listed))
    assert named == packs, f"{doc} names the built-in packs {sorted(named)}, not {sorted(packs)}"
