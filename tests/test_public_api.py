"""`import schnitzel` names what plugin authors use, and every name it lists resolves."""

from __future__ import annotations

import ast
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
