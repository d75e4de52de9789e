"""The CLI skips pydantic's plugin discovery only when it would find nothing: an installed
pydantic plugin is still loaded and used (schnitzel/registry/pydantic_plugins.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pydantic.plugin._loader
import pytest

from schnitzel.registry import pydantic_plugins
from schnitzel.registry.pydantic_plugins import LOADER, skip_empty_plugin_discovery
from tests.conftest import REPO

PLUGIN_MODULE = """
import os

class Recorder:
    def new_schema_validator(self, schema, schema_type, path, kind, config, settings):
        with open(os.environ["PYDANTIC_PLUGIN_MARK"], "a") as mark:
            mark.write(path.name + "\\n")
        return None, None, None

plugin = Recorder()
"""

PROBE = """
import json, sys
from schnitzel.cli.main import main
from schnitzel.registry.pydantic_plugins import LOADER
code = main(["validate", "graphs/demo.yaml"])
print(json.dumps({"code": code, "stand_in": type(sys.modules.get(LOADER)).__name__,
                  "metadata": "importlib.metadata" in sys.modules}))
"""


def validate_demo(env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_without_pydantic_plugins_discovery_is_skipped() -> None:
    result = validate_demo({})
    assert result == {"code": 0, "stand_in": "_NoPluginsLoader", "metadata": False}


def test_an_installed_pydantic_plugin_is_still_loaded_and_used(tmp_path: Path) -> None:
    (tmp_path / "recording_plugin.py").write_text(PLUGIN_MODULE)
    info = tmp_path / "recording_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: recording-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[pydantic]\nrecorder = recording_plugin:plugin\n")
    mark = tmp_path / "mark.txt"
    result = validate_demo({"PYTHONPATH": str(tmp_path), "PYDANTIC_PLUGIN_MARK": str(mark)})
    assert result["code"] == 0
    assert result["stand_in"] == "module"  # pydantic's own loader
    assert "SyntheticConfig" in mark.read_text().split()  # the plugin saw the config models


def test_disabling_plugins_is_left_to_pydantic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, LOADER, pydantic.plugin._loader)
    monkeypatch.delitem(sys.modules, LOADER)
    monkeypatch.setenv("PYDANTIC_DISABLE_PLUGINS", "__all__")
    assert skip_empty_plugin_discovery() is False
    assert LOADER not in sys.modules


def test_the_stand_in_answers_other_names_from_the_real_loader(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = pydantic.plugin._loader
    monkeypatch.setitem(sys.modules, LOADER, real)
    monkeypatch.delitem(sys.modules, LOADER)
    monkeypatch.delenv("PYDANTIC_DISABLE_PLUGINS", raising=False)
    assert skip_empty_plugin_discovery() is True
    stand_in = sys.modules[LOADER]
    assert isinstance(stand_in, pydantic_plugins._NoPluginsLoader)
    assert list(stand_in.get_plugins()) == []
    assert skip_empty_plugin_discovery() is True  # already in place
    assert stand_in.PYDANTIC_ENTRY_POINT_GROUP == real.PYDANTIC_ENTRY_POINT_GROUP == "pydantic"
    assert sys.modules[LOADER] is not stand_in  # the real module took its place
    with pytest.raises(AttributeError):
        stand_in.__no_such_dunder__  # noqa: B018
