"""`module:Class` plugins kept next to their graph file: found without PYTHONPATH, still
behind the allowlist, and `validate --json` stays JSON when such a module prints."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.conftest import SCHNITZEL

PLUGIN = '''
print("{module} imported: a plugin that talks on stdout")
from schnitzel import PluginConfig, StreamPacket, Transform


class Doubler(Transform):
    """Passes each packet on."""

    name = "doubler"

    class Config(PluginConfig):
        pass

    async def process(self, packet: StreamPacket) -> list[StreamPacket]:
        return [packet]
'''

GRAPH = """version: 2
runtime: {{allow_modules: [{allow}]}}
nodes:
  - {{id: src, kind: source, plugin: synthetic, config: {{count: 20}}}}
  - {{id: double, kind: transform, plugin: "{module}:Doubler"}}
  - {{id: out, kind: sink, plugin: "null"}}
edges:
  - {{from: src, to: double}}
  - {{from: double, to: out}}
"""


def graph_with_plugin(
    tmp_path: Path, module: str, allow: str | None = None, write_module: bool = True
) -> Path:
    """A graph in its own directory, with its plugin module beside it."""
    graph_dir = tmp_path / "graphs"
    graph_dir.mkdir()
    if write_module:
        (graph_dir / f"{module}.py").write_text(PLUGIN.format(module=module))
    graph = graph_dir / "g.yaml"
    graph.write_text(GRAPH.format(module=module, allow=allow or module))
    return graph


def run_elsewhere(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI from another directory, without PYTHONPATH: as an operator would."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir(exist_ok=True)
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SCHNITZEL_ALLOW_MODULES")
    }
    env["SCHNITZEL_STATE_DIR"] = str(tmp_path / "state")
    return subprocess.run(
        [*SCHNITZEL, *args],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_plugin_module_next_to_the_graph_is_found_without_pythonpath(tmp_path: Path) -> None:
    graph = graph_with_plugin(tmp_path, "c2f_beside")
    done = run_elsewhere(tmp_path, "validate", str(graph))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "double" in done.stdout and "doubler" in done.stdout


def test_validate_json_stays_json_when_the_plugin_module_prints(tmp_path: Path) -> None:
    graph = graph_with_plugin(tmp_path, "c2f_talker")
    done = run_elsewhere(tmp_path, "validate", "--json", str(graph))
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)  # nothing but the report on stdout
    assert report["valid"] is True
    assert "c2f_talker imported" in done.stderr


def test_validate_json_stays_json_when_the_module_writes_to_fd_1(tmp_path: Path) -> None:
    # as a native library does when it is loaded: past sys.stdout, straight to the descriptor
    graph = graph_with_plugin(tmp_path, "c2f_native")
    module = graph.parent / "c2f_native.py"
    module.write_text('import os\nos.write(1, b"RAW FD1 WRITE\\n")\n' + module.read_text())
    done = run_elsewhere(tmp_path, "validate", "--json", str(graph))
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)  # nothing but the report on stdout
    assert report["valid"] is True
    assert "RAW FD1 WRITE" in done.stderr and "RAW FD1 WRITE" not in done.stdout


def test_a_graph_runs_with_its_plugin_module_from_its_directory(tmp_path: Path) -> None:
    graph = graph_with_plugin(tmp_path, "c2f_runner")
    report = tmp_path / "report.json"
    done = run_elsewhere(
        tmp_path, "run", str(graph), "--no-control-socket", "--report-json", str(report)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    nodes = json.loads(report.read_text())["nodes"]
    assert nodes["double"]["in"] == 20 and nodes["out"]["in"] == 20


def test_a_module_next_to_the_graph_is_still_refused_unless_allowlisted(tmp_path: Path) -> None:
    graph = graph_with_plugin(tmp_path, "c2f_unlisted", allow="something_else")
    done = run_elsewhere(tmp_path, "validate", str(graph))
    assert done.returncode == 1
    assert "[plugin-not-allowed]" in done.stdout
    assert "c2f_unlisted imported" not in done.stdout + done.stderr  # never imported


def test_a_missing_module_says_where_it_was_looked_for(tmp_path: Path) -> None:
    graph = graph_with_plugin(tmp_path, "c2f_absent", write_module=False)
    done = run_elsewhere(tmp_path, "validate", str(graph))
    assert done.returncode == 1
    assert "there is no module 'c2f_absent' on the Python path" in done.stdout
    assert f"nor in {graph.parent} (the graph file's directory)" in done.stdout
    assert "put c2f_absent.py (or the package c2f_absent/) next to the graph file" in done.stdout


def test_a_plugin_without_process_is_named_by_validate_and_nothing_runs(tmp_path: Path) -> None:
    graph = graph_with_plugin(tmp_path, "declared_beside")
    module = graph.parent / "declared_beside.py"
    module.write_text(module.read_text().replace("async def process(", "async def process_many("))
    validated = run_elsewhere(tmp_path, "validate", str(graph))
    said = (
        "error [plugin-incomplete] node 'double': plugin 'doubler' declares itself but does not "
        "implement process(), so it cannot run: its class needs `def process(self, packet)`"
    )
    assert validated.returncode == 1 and said in validated.stdout, validated.stdout
    ran = run_elsewhere(tmp_path, "run", str(graph))
    assert ran.returncode == 1 and said in ran.stderr, ran.stderr
    assert "nothing was run" in ran.stderr
