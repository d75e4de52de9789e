"""Built-in packs use only what a third-party pack could: names `import schnitzel` exports
(docs/plugins.md), and modules of their own pack, lazy imports and TYPE_CHECKING included."""

from __future__ import annotations

import ast
from pathlib import Path

import schnitzel

PLUGINS = Path(__file__).resolve().parent.parent / "plugins"

BORROWED_FROM_OTHER_PACKS: dict[tuple[str, str], str] = {}
"""(pack, module of another pack) a pack may import, each with the reason. What packs share
belongs in the SDK instead (as the retry options and breaker did)."""


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) of every import in the file; names empty for `import x`."""
    found: list[tuple[int, str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module, [alias.name for alias in node.names]))
    return found


def _wrong_imports(path: Path, pack: str, where: str) -> list[str]:
    wrong = []
    for line, module, names in _imports(path):
        if module == "schnitzel":
            unknown = sorted(set(names) - set(schnitzel.__all__))
            if not names or unknown:
                wrong.append(f"{where}:{line}: schnitzel exports no {unknown or module}")
        elif module.startswith("schnitzel."):
            wrong.append(f"{where}:{line}: {module} (import it from `schnitzel`)")
        elif module.startswith("schnitzel_plugins."):
            other = module.split(".")[1]
            if other != pack and (pack, module) not in BORROWED_FROM_OTHER_PACKS:
                wrong.append(f"{where}:{line}: {module} belongs to the {other} pack")
        elif module.startswith("schnitzel_tui"):
            wrong.append(f"{where}:{line}: {module} (the console is no part of the SDK)")
    return wrong


def test_packs_import_only_what_schnitzel_exports() -> None:
    files = sorted(p for p in PLUGINS.rglob("*.py") if p.parent != PLUGINS)
    assert len(files) > 30  # every pack's modules, not an empty walk
    wrong = [
        problem
        for path in files
        for problem in _wrong_imports(
            path, path.relative_to(PLUGINS).parts[0], str(path.relative_to(PLUGINS.parent))
        )
    ]
    assert wrong == []


def test_a_deep_import_is_reported(tmp_path: Path) -> None:
    sample = tmp_path / "probe.py"
    sample.write_text(
        "from schnitzel.contract.packet import StreamPacket\n"
        "from schnitzel import NoSuchName\n"
        "from schnitzel_plugins.io.jsonl import JsonlSource\n"
    )
    wrong = _wrong_imports(sample, "core", "plugins/core/probe.py")
    assert len(wrong) == 3, wrong
