"""CLI start-up imports only what the command needs (docs/architecture.md, "Lazy imports for
CLI start-up"): which modules a command loaded, never how long it took."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO, SCHNITZEL
from tests.control.harness import GUARD_S, socket_dir

# Runs a CLI command in a fresh interpreter, then prints the modules it loaded.
PROBE = """
import json, sys
from schnitzel.cli.main import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""

NEVER_FOR_VALIDATE = (
    "asyncio",
    "sqlite3",
    "numpy",
    "cv2",
    "onnxruntime",
    "httpx",
    "nats",
    "msgspec",
)
ENDLESS = """version: 2
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {rate_hz: 50.0}}
  - {id: out, kind: sink, plugin: "null"}
edges: [{from: src, to: out}]
"""


def loaded_by(*args: str) -> tuple[int, set[str]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    result = json.loads(done.stdout.splitlines()[-1])
    return result["code"], set(result["modules"])


def tops(modules: set[str]) -> set[str]:
    return {m.partition(".")[0] for m in modules}


def test_validate_imports_only_the_plugins_the_graph_names() -> None:
    code, modules = loaded_by("validate", "graphs/demo.yaml")
    assert code == 0
    # the demo's plugins: synthetic, passthrough, sample, dedup (core), jsonl sink (io)
    assert {"schnitzel_plugins.core.synthetic", "schnitzel_plugins.io.jsonl_sink"} <= modules
    assert "schnitzel_plugins.io.jsonl" not in modules  # the jsonl source: not in the graph
    plugin_modules = {m for m in modules if m.startswith("schnitzel_plugins.") and m.count(".") > 1}
    assert {m.split(".")[1] for m in plugin_modules} == {"core", "io"}  # packs with nodes here
    assert not tops(modules) & set(NEVER_FOR_VALIDATE)
    assert "schnitzel.runtime.runtime" not in modules
    # the jsonl sink's encoder is imported when a sink is made, not to check its config
    assert "schnitzel.contract.codec" not in modules
    assert "difflib" not in modules  # "did you mean" is for graphs with a mistake
    # entry points come from the registry's own scan, and with no pydantic plugin installed
    # pydantic's discovery is skipped: importlib.metadata (and the email package) stay out
    assert "importlib.metadata" not in modules
    assert "email" not in tops(modules)


BUILT_PROBE = """
import json, sys
from pydantic import BaseModel
from schnitzel.cli.main import main
code = main(["validate", "graphs/demo.yaml"])
built = set()
for name, module in list(sys.modules.items()):
    if name.startswith(("schnitzel.", "schnitzel_plugins.")):
        for value in vars(module).values():
            if not (isinstance(value, type) and issubclass(value, BaseModel)):
                continue
            if value.__module__ == name and value.__pydantic_complete__:
                built.add(value.__qualname__)
print(json.dumps({"code": code, "built": sorted(built)}))
"""


def test_validate_builds_the_validators_of_the_models_the_graph_uses_only() -> None:
    done = subprocess.run(
        [sys.executable, "-c", BUILT_PROBE],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["code"] == 0
    # the nodes, the edges, and the configs of the demo's plugins (passthrough and null take
    # PluginConfig itself); no `runtime:` in the demo, so no RuntimeSpec or ControllerSpec
    assert set(result["built"]) == {
        "NodeSpec",
        "EdgeSpec",
        "PluginConfig",
        "SyntheticConfig",
        "SampleConfig",
        "DedupConfig",
        "JsonlSinkConfig",
    }


def test_ctl_status_imports_neither_pydantic_nor_asyncio_nor_yaml(tmp_path: Path) -> None:
    graph = tmp_path / "graph.yaml"
    graph.write_text(ENDLESS)
    with socket_dir() as directory:
        socket, state = directory / "ctl.sock", str(tmp_path / "state")
        run = subprocess.Popen(
            [*SCHNITZEL, "run", str(graph), "--control-socket", str(socket), "--state-dir", state],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + GUARD_S
            while True:  # poll until the runtime answers (a hang guard, not a timing check)
                assert run.poll() is None, run.communicate()[1]
                code, modules = loaded_by("ctl", "--socket", str(socket), "status", "--json")
                if code == 0:
                    break
                assert time.monotonic() < deadline, "hang guard"
                time.sleep(0.1)
            # the text form checks the report's shape, without pydantic when it is exact
            text_code, text_modules = loaded_by("ctl", "--socket", str(socket), "status")
        finally:
            run.send_signal(signal.SIGTERM)
            run.communicate(timeout=60)
    assert text_code == 0
    for loaded in (modules, text_modules):
        assert not tops(loaded) & {"pydantic", "pydantic_core", "asyncio", "yaml", "msgspec"}
        assert "schnitzel.control.client" in loaded


def test_validate_leaves_the_collector_on_with_its_start_up_frozen() -> None:
    probe = (
        "import gc, sys\nfrom schnitzel.cli.main import main\n"
        "code = main(['validate', 'graphs/demo.yaml'])\n"
        "print(code, gc.isenabled(), gc.get_freeze_count() > 0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.splitlines()[-1] == "0 True True"


def test_run_freezes_its_start_up_heap_without_a_full_collection(tmp_path: Path) -> None:
    # A full collection before the run would pass over every object the imports, the
    # validation and the runtime made (launch/start_up_heap.py): `run` freezes them instead.
    graph = tmp_path / "graph.yaml"
    graph.write_text(ENDLESS.replace("rate_hz: 50.0", "count: 3"))
    probe = (
        "import gc, sys\nfrom schnitzel.cli.main import main\n"
        "full = []\n"
        "collect = gc.collect\n"
        "def counted(generation=2):\n"
        "    full.append(generation == 2)\n"
        "    return collect(generation)\n"
        "gc.collect = counted\n"
        "code = main(sys.argv[1:])\n"
        "print(code, any(full), gc.isenabled(), gc.get_freeze_count() > 0)\n"
    )
    state = str(tmp_path / "state")
    done = subprocess.run(
        [sys.executable, "-c", probe, "run", str(graph), "--state-dir", state],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.splitlines()[-1] == "0 False True True", done.stderr


def test_run_imports_control_models_and_the_durable_inbox_only_when_used(tmp_path: Path) -> None:
    graph = tmp_path / "graph.yaml"
    graph.write_text(ENDLESS.replace("rate_hz: 50.0", "count: 3"))
    code, modules = loaded_by("run", str(graph), "--state-dir", str(tmp_path / "state"))
    assert code == 0
    assert "schnitzel.control.server" in modules  # the socket was served
    # the commands' and requests' pydantic models, and a swap's diff: none was asked for
    assert not {"schnitzel.control.command_args", "schnitzel.control.request"} & modules
    assert "difflib" not in modules
    # no durable inbox in the graph: neither the durable inbox nor SQLite nor msgspec
    assert "schnitzel.runtime.durable_inbox" not in modules
    assert not tops(modules) & {"sqlite3", "msgspec"}
