"""Plugin registry: entry-point packs, API versions, name clashes and the module allowlist."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from schnitzel import Sink, Source, Transform
from schnitzel.errors import PluginLoadError, PluginNotAllowed, PluginNotFound
from schnitzel.registry import (
    ALLOW_MODULES_ENV,
    PluginPack,
    PluginRegistry,
    api_compatible,
)
from schnitzel.registry.apiversion import PLUGIN_API_VERSION, parse_version
from schnitzel.registry.registry import GRAPH_ALLOWLIST_ENV
from schnitzel.validate import validate_text

PACK_MODULE = textwrap.dedent(
    '''
    from typing import ClassVar
    from pydantic import Field
    from schnitzel import PluginConfig, PluginPack, Policy, Sink

    class LimitConfig(PluginConfig):
        """Options."""
        max_value: float = Field(gt=0)

    class Limit(Policy):
        """Passes sensor packets under a limit."""
        name = "limit"
        Config = LimitConfig
        accepts = frozenset({"sensor"})

        def process(self, packet):
            return packet if packet.payload.get("value", 0) < self.config.max_value else None

    class Future(Sink):
        """Written for an API this runtime does not have."""
        name = "future"
        api_version = "2.0"

    class NullAgain(Sink):
        """Clashes with the core pack's null sink."""
        name = "null"

    PACK = PluginPack("acme", (Limit, Future, NullAgain))
    NOT_A_PACK = 42
    '''
)


LIMIT_BY_REFERENCE = """
version: 2
nodes:
  - {id: s, kind: source, plugin: synthetic}
  - {id: l, kind: policy, plugin: "acme_pack:Limit", config: {max_value: 1}}
  - {id: o, kind: sink, plugin: "null"}
edges: [{from: s, to: l}, {from: l, to: o}]
"""


def install_fake_dist(root: Path, entry_points: str) -> None:
    """A real installed distribution: a module and a .dist-info with entry_points.txt."""
    (root / "acme_pack.py").write_text(PACK_MODULE)
    (root / "broken_pack.py").write_text("raise RuntimeError('missing libfoo.so')\n")
    info = root / "acme_pack-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-pack\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(entry_points)


@pytest.fixture
def acme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PluginRegistry:
    install_fake_dist(
        tmp_path,
        "[schnitzel.plugins]\nacme = acme_pack:PACK\nbroken = broken_pack:PACK\n"
        "notapack = acme_pack:NOT_A_PACK\n",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return PluginRegistry.from_entry_points()


def test_builtin_packs_register_through_entry_points(registry: PluginRegistry) -> None:
    packs = {r.pack for r in registry.plugins()}
    assert {"core", "io", "http"} <= packs
    names = {(r.plugin.name, r.plugin.node_kind) for r in registry.plugins()}
    assert {
        ("synthetic", "source"),
        ("passthrough", "transform"),
        ("null", "sink"),
        ("jsonl", "source"),
        ("jsonl", "sink"),
        ("sample", "transform"),
        ("http", "sink"),
        ("delay", "delay"),
        ("dedup", "policy"),
    } <= names
    assert registry.broken == []


def test_every_built_in_plugin_has_a_whole_sentence_as_its_summary(
    registry: PluginRegistry,
) -> None:
    # `schnitzel plugins` and the schema show the docstring's first line: a first sentence
    # wrapped onto a second line was shown cut off mid-sentence ("... when it is").
    cut = [
        f"{r.plugin.name} ({r.plugin.node_kind}): {r.plugin.summary()!r}"
        for r in registry.plugins()
        if not r.plugin.summary().endswith((".", ")"))
    ]
    assert cut == [], "end each summary line with a full stop; the rest goes below a blank line"


def test_third_party_pack_registers_like_a_builtin(acme: PluginRegistry) -> None:
    assert acme.lookup("limit", "policy").name == "limit"
    graph = """
version: 2
nodes:
  - {id: s, kind: source, plugin: synthetic, config: {count: 1}}
  - {id: l, kind: policy, plugin: limit, config: {max_value: 3}}
  - {id: o, kind: sink, plugin: "null"}
edges: [{from: s, to: l}, {from: l, to: o}]
"""
    assert validate_text(graph, registry=acme).report.valid


def test_failing_packs_are_reported_without_hiding_the_others(acme: PluginRegistry) -> None:
    reasons = {b.pack: b.reason for b in acme.broken}
    assert reasons["broken"] == (
        "entry point broken = broken_pack:PACK (schnitzel.plugins) failed to import: "
        "RuntimeError: missing libfoo.so; check that the pack and what it imports are "
        "installed in the environment schnitzel runs in"
    )
    assert reasons["notapack"] == (
        "entry point notapack = acme_pack:NOT_A_PACK (schnitzel.plugins) must name a "
        "schnitzel.PluginPack, not an int; point it at the pack object: `module:PACK`, where "
        "the module has `PACK = PluginPack(name=..., plugins=(...))` (docs/plugins.md)"
    )
    assert acme.lookup("synthetic", "source").name == "synthetic"


def test_plugin_for_a_newer_api_is_refused_with_the_versions(acme: PluginRegistry) -> None:
    future = next(b for b in acme.broken if b.name == "future")
    assert f"targets plugin API 2.0; this runtime provides {PLUGIN_API_VERSION}" in future.reason
    with pytest.raises(PluginNotFound, match="installed but failed to load"):
        acme.lookup("future", "sink")


def test_name_clash_keeps_the_first_pack_and_reports_the_second(acme: PluginRegistry) -> None:
    clash = next(b for b in acme.broken if b.name == "null")
    assert clash.reason == (
        "sink plugin 'null' is already registered by pack 'core'; the one from 'acme' is "
        "ignored: give it another `name` (a graph reaches it meanwhile as `module:Class`)"
    )
    assert acme.lookup("null", "sink").__module__.startswith("schnitzel_plugins")


def test_plugin_of_another_kind_is_named_in_the_error(registry: PluginRegistry) -> None:
    with pytest.raises(PluginNotFound, match="'null' is a sink plugin, not a transform"):
        registry.lookup("null", "transform")


def test_unknown_plugin_suggests_the_closest_name(registry: PluginRegistry) -> None:
    with pytest.raises(PluginNotFound, match="did you mean 'passthrough'"):
        registry.lookup("passthru", "transform")


def test_module_reference_needs_the_allowlist(
    acme: PluginRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ALLOW_MODULES_ENV, raising=False)
    with pytest.raises(PluginNotAllowed, match="not on the plugin allowlist"):
        acme.resolve("acme_pack:Limit", "policy", allow=())
    with pytest.raises(PluginNotAllowed):  # a prefix must end at a module boundary
        acme.resolve("acme_pack:Limit", "policy", allow=("acme",))
    assert acme.resolve("acme_pack:Limit", "policy", allow=("acme_pack",)).name == "limit"


def test_module_allowlist_comes_from_env_and_graph(
    acme: PluginRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    graph = LIMIT_BY_REFERENCE
    monkeypatch.delenv(ALLOW_MODULES_ENV, raising=False)
    refused = validate_text(graph, registry=acme).report
    assert [p.code for p in refused.errors] == ["plugin-not-allowed"]
    monkeypatch.setenv(ALLOW_MODULES_ENV, "other, acme_pack")
    assert validate_text(graph, registry=acme).report.valid
    monkeypatch.delenv(ALLOW_MODULES_ENV)
    allowed = graph + "runtime: {allow_modules: [acme_pack]}\n"
    assert validate_text(allowed, registry=acme).report.valid


def test_module_reference_that_is_not_a_plugin_is_refused(
    acme: PluginRegistry,
) -> None:
    with pytest.raises(PluginLoadError, match="is not a plugin class"):
        acme.resolve("acme_pack:NOT_A_PACK", "sink", allow=("acme_pack",))
    with pytest.raises(PluginNotFound, match="is a policy plugin, not a sink"):
        acme.resolve("acme_pack:Limit", "sink", allow=("acme_pack",))


def test_registry_from_classes_needs_no_entry_points() -> None:
    from schnitzel_plugins.core import PACK

    registry = PluginRegistry([PluginPack("mini", PACK.plugins[:1])])
    assert [(r.plugin.name, r.pack) for r in registry.plugins()] == [("synthetic", "mini")]


@pytest.mark.parametrize(
    ("plugin", "runtime", "ok"),
    [
        ("1.0", "1.0", True),
        ("1.0", "1.3", True),
        ("1.4", "1.3", False),
        ("2.0", "1.9", False),
        ("0.9", "1.0", False),
        ("1.0.7", "1.0", True),
    ],
)
def test_api_compatibility_is_same_major_and_no_newer_minor(
    plugin: str, runtime: str, ok: bool
) -> None:
    assert api_compatible(plugin, runtime) is ok


def test_malformed_api_version_is_refused() -> None:
    with pytest.raises(ValueError, match=r"MAJOR\.MINOR"):
        parse_version("one")


def test_plugins_command_lists_third_party_and_broken_packs(tmp_path: Path) -> None:
    install_fake_dist(tmp_path, "[schnitzel.plugins]\nacme = acme_pack:PACK\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "schnitzel.cli.main", "plugins", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    limit = next(p for p in listing["plugins"] if p["name"] == "limit")
    assert limit["pack"] == "acme" and limit["accepts"] == ["sensor"]
    assert limit["config"] == [
        {
            "name": "max_value",
            "type": "number",
            "required": True,
            "default": None,
            "description": "",
        }
    ]
    assert any(b["name"] == "future" for b in listing["broken"])
    text = subprocess.run(
        [sys.executable, "-m", "schnitzel.cli.main", "plugins"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    ).stdout
    assert "limit (policy, pack acme)" in text and "BROKEN pack acme future" in text


def _plugin(base: type, **attrs: object) -> type:
    return type("Bad", (base,), {"name": "bad", "__doc__": "A bad declaration.", **attrs})


@pytest.mark.parametrize(
    ("plugin", "reason"),
    [
        (_plugin(Transform, outputs=()), "a transform needs at least one input and output"),
        (_plugin(Transform, inputs=["in"]), "`inputs` must be a tuple of port names"),
        (_plugin(Transform, outputs=("Out",)), "`outputs` must be a tuple of port names"),
        (_plugin(Transform, inputs=("a", "a")), "`inputs` names a port twice"),
        (_plugin(Source, inputs=("in",)), "a source takes no inputs"),
        (_plugin(Sink, outputs=("out",)), "a sink has no outputs"),
        (_plugin(Transform, accepts={"sensor"}), "`accepts` must be a frozenset"),
        (_plugin(Transform, emits="sensor"), "`emits` must be a frozenset"),
        (_plugin(Transform, emits_profile="json_portable"), "`emits_profile` must be"),
        (_plugin(Transform, requires_portable=1), "`requires_portable` must be True or False"),
        (_plugin(Transform, name="Bad Name"), "set `name` to a string of [a-z0-9_-]"),
        (_plugin(Transform, api_version="one"), "api_version 'one' is not a MAJOR.MINOR"),
    ],
)
def test_malformed_declarations_are_refused_at_load_not_at_validation(
    plugin: type, reason: str
) -> None:
    registry = PluginRegistry([PluginPack("bad", (plugin,))])
    [broken] = registry.broken
    assert reason in broken.reason
    assert registry.plugins() == []


@pytest.mark.slow
def test_option_defaults_json_cannot_hold_are_listed_as_text(tmp_path: Path) -> None:
    (tmp_path / "pathy.py").write_text(
        "from pathlib import Path\nfrom schnitzel import PluginConfig, PluginPack, Sink\n"
        "class C(PluginConfig):\n    where: Path = Path('state')\n"
        "class S(Sink):\n    'Writes somewhere.'\n    name = 'pathy'\n    Config = C\n"
        "PACK = PluginPack('pathy', (S,))\n"
    )
    info = tmp_path / "pathy-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pathy\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[schnitzel.plugins]\npathy = pathy:PACK\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    for args in (["plugins", "--json"], ["plugins"], ["schema"]):
        result = subprocess.run(
            [sys.executable, "-m", "schnitzel.cli.main", *args],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "state" in result.stdout


def test_graph_allowlist_can_be_switched_off_for_untrusted_graphs(
    acme: PluginRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    graph = LIMIT_BY_REFERENCE + "runtime: {allow_modules: [acme_pack]}\n"
    monkeypatch.delenv(ALLOW_MODULES_ENV, raising=False)
    monkeypatch.setenv(GRAPH_ALLOWLIST_ENV, "off")
    [problem] = validate_text(graph, registry=acme).report.errors
    assert problem.code == "plugin-not-allowed"
    assert "the graph's own allowlist is ignored" in problem.message


def test_module_reference_to_a_newer_api_is_refused_with_its_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_fake_dist(tmp_path, "")
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = """
version: 2
nodes:
  - {id: s, kind: source, plugin: synthetic}
  - {id: f, kind: sink, plugin: "acme_pack:Future"}
edges: [{from: s, to: f}]
runtime: {allow_modules: [acme_pack]}
"""
    [problem] = validate_text(graph).report.errors
    assert problem.code == "plugin-api-mismatch" and "targets plugin API 2.0" in problem.message
