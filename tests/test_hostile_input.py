"""Hostile and broken inputs: the validator refuses each one cleanly, with the right problem.

Never a traceback, never unbounded memory, never code execution. Inputs that cannot live in
the comment-headed corpus (binary, not UTF-8, huge, generated) are built here in tmp_path.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from schnitzel.registry import PluginRegistry
from schnitzel.spec.yaml_source import LIMITS
from schnitzel.validate import Problem, ValidationResult, validate_file, validate_text
from schnitzel.validate.validator import validate_bytes
from tests.conftest import run_cli

MIB = 1024 * 1024

VALID = """\
version: 2
nodes:
  - {id: cam, kind: source, plugin: synthetic}
  - {id: out, kind: sink, plugin: "null"}
edges:
  - {from: cam, to: out}
"""

BILLION_LAUGHS = """\
version: 2
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]
nodes: *i
"""


def codes(result: ValidationResult) -> list[str]:
    return [p.code for p in result.report.problems]


def only_problem(result: ValidationResult, code: str) -> Problem:
    """The single problem of a file that failed to load, checked to have `code`."""
    problems = result.report.problems
    assert [p.code for p in problems] == [code], [(p.code, p.message) for p in problems]
    assert result.graph is None
    assert not result.report.valid
    assert problems[0].message.strip()
    return problems[0]


def peak_memory(call: Callable[[], Any]) -> tuple[Any, int]:
    """The result of `call` and the peak of Python allocations while it ran, in bytes."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def write(tmp_path: Path, data: bytes | str, name: str = "graph.yaml") -> Path:
    path = tmp_path / name
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


# -- size ------------------------------------------------------------------------------------


def test_50mb_file_is_refused_by_its_size_without_being_read(
    tmp_path: Path, registry: PluginRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as handle:  # sparse: 50 MB on paper, nothing on disk
        handle.truncate(50 * MIB)

    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("the oversized file was opened for reading")

    monkeypatch.setattr(Path, "open", no_reading)
    monkeypatch.setattr(Path, "read_bytes", no_reading)
    result, peak = peak_memory(lambda: validate_file(path, registry=registry))
    problem = only_problem(result, "file-too-large")
    assert "50.0 MiB" in problem.message
    assert f"at most {LIMITS.max_bytes // MIB} MiB" in problem.message
    assert peak < 4 * MIB


def test_50mb_file_makes_the_cli_exit_1_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as handle:
        handle.truncate(50 * MIB)
    done = run_cli("validate", str(path))
    assert done.returncode == 1
    assert "[file-too-large]" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_oversized_bytes_are_refused_before_decoding(registry: PluginRegistry) -> None:
    data = b"#" * (LIMITS.max_bytes + 1)
    only_problem(validate_bytes(data, registry=registry), "file-too-large")


def test_oversized_stdin_is_refused_with_a_size_over_the_limit() -> None:
    # stdin (or /dev/zero) has no size to stat: the CLI reads limit+1 bytes. The message must
    # not then claim a size that reads as equal to the limit ("is 8.0 MiB; ... at most 8 MiB").
    done = run_cli("validate", "-", stdin=b" " * (LIMITS.max_bytes + 1))
    assert done.returncode == 1
    out = done.stdout
    assert "[file-too-large]" in out
    assert "Traceback" not in out + done.stderr
    limit = LIMITS.max_bytes // MIB
    assert f"is {limit}.0 MiB; a graph file may be at most {limit} MiB" not in out, out


# -- encoding and binary ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"version: 2\x00\nnodes: []\n",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10",
        "version: 2\nnodes: []\n".encode("utf-16"),
        b"\x00" * 4096,
    ],
    ids=["nul-in-text", "png-header", "utf-16", "all-nul"],
)
def test_file_with_nul_bytes_is_refused_as_binary(
    tmp_path: Path, registry: PluginRegistry, data: bytes
) -> None:
    problem = only_problem(validate_file(write(tmp_path, data), registry=registry), "not-text")
    assert "NUL bytes" in problem.message


def test_latin1_file_is_refused_as_not_utf8_with_the_line_of_the_bad_byte(
    tmp_path: Path, registry: PluginRegistry
) -> None:
    data = b"version: 2\n# caf\xe9 au lait\nnodes: []\n"
    problem = only_problem(validate_file(write(tmp_path, data), registry=registry), "not-text")
    assert "not UTF-8" in problem.message
    assert "0xe9" in problem.message
    assert problem.where.line == 2


def test_utf8_bom_is_not_a_problem(tmp_path: Path, registry: PluginRegistry) -> None:
    path = write(tmp_path, b"\xef\xbb\xbf" + VALID.encode())
    result = validate_file(path, registry=registry)
    assert result.report.valid, [p.message for p in result.report.problems]


def test_control_character_is_a_yaml_syntax_problem_on_its_line(registry: PluginRegistry) -> None:
    text = "version: 2\nnodes:\n  - {id: cam\x1b, kind: source, plugin: synthetic}\n"
    problem = only_problem(validate_text(text, registry=registry), "yaml-syntax")
    assert "control characters are not allowed" in problem.message
    assert problem.where.line == 3
    assert "<unicode string>" not in problem.message  # PyYAML's internal stream name


def test_unclosed_flow_mapping_says_on_which_line_it_was_opened(
    registry: PluginRegistry,
) -> None:
    # The parser notices the missing `}` on the next line, which is fine in itself; PyYAML
    # knows where the mapping was opened (its context mark), and the report must say so.
    text = (
        "version: 2\n"
        "nodes:\n"
        "  - {id: cam, kind: source, plugin: synthetic}\n"
        '  - {id: out, kind: sink, plugin: "null"}\n'
        "edges:\n"
        "  - {from: cam, to: out\n"
        "runtime: {}\n"
    )
    problem = only_problem(validate_text(text, registry=registry), "yaml-syntax")
    assert problem.where.line == 7
    assert "line 6" in problem.message + problem.hint


def test_lone_surrogate_in_text_is_reported_not_raised(registry: PluginRegistry) -> None:
    # A str that no file could hold (UTF-8 decoding refuses surrogates), but validate_text is
    # public API: it must report, not raise UnicodeEncodeError from the C parser.
    result = validate_text("version: 2\nnodes: '\ud800'\n", registry=registry)
    assert not result.report.valid
    assert "not-text" in codes(result)


# -- nesting ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,
        "[" * 100_000,
        "{a: " * 100_000 + "1" + "}" * 100_000,
        "- " * 100_000 + "x\n",
        "nodes:\n"
        + "".join(" " * depth + "a:\n" for depth in range(1, 1_000))
        + " " * 1000
        + "1\n",
    ],
    ids=["flow-lists", "unclosed-flow-lists", "flow-mappings", "block-lists", "block-mappings"],
)
def test_deep_nesting_is_refused_as_too_deep(
    tmp_path: Path, registry: PluginRegistry, text: str
) -> None:
    problem = only_problem(validate_file(write(tmp_path, text), registry=registry), "too-deep")
    assert f"deeper than {LIMITS.max_depth} levels" in problem.message
    assert problem.where.line is not None


def nested_graph(lists: int) -> str:
    """A valid graph whose synthetic payload holds `lists` nested lists.

    The document is then 5 + `lists` levels deep: top mapping, nodes list, node mapping,
    config mapping, payload mapping, then the lists.
    """
    deep = "[" * lists + "]" * lists
    return VALID.replace(
        "plugin: synthetic}", f"plugin: synthetic, config: {{payload: {{x: {deep}}}}}}}"
    )


def test_nesting_exactly_at_the_depth_limit_is_valid(registry: PluginRegistry) -> None:
    result = validate_text(nested_graph(LIMITS.max_depth - 5), registry=registry)
    assert result.report.valid, [p.message for p in result.report.problems]


def test_nesting_one_level_over_the_depth_limit_is_too_deep(registry: PluginRegistry) -> None:
    result = validate_text(nested_graph(LIMITS.max_depth - 4), registry=registry)
    problem = only_problem(result, "too-deep")
    assert problem.where.line == 3


# -- aliases ---------------------------------------------------------------------------------


def test_alias_bomb_is_refused_with_bounded_memory(
    tmp_path: Path, registry: PluginRegistry
) -> None:
    path = write(tmp_path, BILLION_LAUGHS)
    result, peak = peak_memory(lambda: validate_file(path, registry=registry))
    problem = only_problem(result, "too-large-expanded")
    assert "alias bomb" in problem.message
    assert problem.where.line is not None
    assert peak < 50 * MIB


def test_alias_bomb_of_mappings_is_refused_with_bounded_memory(registry: PluginRegistry) -> None:
    lines = ["version: 2", "l0: &l0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9, j: 0}"]
    for level in range(1, 9):
        refs = ", ".join(f"k{n}: *l{level - 1}" for n in range(10))
        lines.append(f"l{level}: &l{level} {{{refs}}}")
    lines.append("nodes: [*l8]")
    result, peak = peak_memory(lambda: validate_text("\n".join(lines), registry=registry))
    only_problem(result, "too-large-expanded")
    assert peak < 50 * MIB


def test_wide_alias_fan_out_is_refused_as_too_large_expanded(registry: PluginRegistry) -> None:
    # No depth at all: one 1,000-item list repeated 2,000 times is 2 million values.
    items = ", ".join(["x"] * 1000)
    refs = ", ".join(["*big"] * 2000)
    text = f"version: 2\nbig: &big [{items}]\nnodes: [{refs}]\n"
    result, peak = peak_memory(lambda: validate_text(text, registry=registry))
    only_problem(result, "too-large-expanded")
    assert peak < 50 * MIB


def test_alias_bomb_makes_the_cli_exit_1_without_traceback(tmp_path: Path) -> None:
    done = run_cli("validate", str(write(tmp_path, BILLION_LAUGHS)))
    assert done.returncode == 1
    assert "[too-large-expanded]" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_recursive_alias_is_refused(registry: PluginRegistry) -> None:
    text = "version: 2\nnodes: &n\n  - *n\n"
    problem = only_problem(validate_text(text, registry=registry), "recursive-alias")
    assert problem.where.line == 3


# -- nothing in the file ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b"   \n\n      \n", b"\n\r\n\n", b"# only a comment\n# and another\n", b"\xef\xbb\xbf"],
    ids=["empty", "spaces-and-newlines", "crlf-newlines", "comments-only", "bom-only"],
)
def test_file_without_a_document_is_reported_as_empty(
    tmp_path: Path, registry: PluginRegistry, data: bytes
) -> None:
    problem = only_problem(validate_file(write(tmp_path, data), registry=registry), "empty-file")
    assert "empty" in problem.message


def test_empty_file_makes_the_cli_exit_1(tmp_path: Path) -> None:
    done = run_cli("validate", str(write(tmp_path, b"")))
    assert done.returncode == 1
    assert "[empty-file]" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


# -- tags: never construct or execute anything ------------------------------------------------


@pytest.mark.parametrize(
    "tag",
    [
        "!!python/object/apply:os.system",
        "!!python/object/new:os.system",
        "!!python/object:os.system",
        "!!python/name:os.system",
        "!!python/module:os",
        "!custom",
    ],
)
def test_python_and_unknown_tags_are_refused_without_executing(
    tmp_path: Path, registry: PluginRegistry, tag: str
) -> None:
    marker = tmp_path / "pwned"
    text = (
        "version: 2\n"
        "nodes:\n"
        "  - id: cam\n"
        "    kind: source\n"
        "    plugin: synthetic\n"
        f'    config: {tag} ["touch {marker}"]\n'
    )
    result = validate_file(write(tmp_path, text), registry=registry)
    problem = only_problem(result, "yaml-syntax")
    assert "could not determine a constructor for the tag" in problem.message
    assert problem.where.line == 6
    assert not marker.exists()


def test_python_tag_makes_the_cli_exit_1_without_executing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = f'version: !!python/object/apply:os.system ["touch {marker}"]\nnodes: []\n'
    done = run_cli("validate", str(write(tmp_path, text)))
    assert done.returncode == 1
    assert "[yaml-syntax]" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    assert not marker.exists()


# -- keys and shapes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "shown"),
    [("1", "1"), ("~", "null"), ("3.5", "3.5"), ("2024-01-01", "2024")],
    ids=["int", "null", "float", "date"],
)
def test_non_string_top_level_key_is_an_unknown_key_on_its_own_line(
    registry: PluginRegistry, key: str, shown: str
) -> None:
    text = VALID + f"{key}: x\n"
    result = validate_text(text, registry=registry)
    problems = [p for p in result.report.problems if p.code == "unknown-key"]
    assert len(problems) == 1, [(p.code, p.message) for p in result.report.problems]
    assert shown in problems[0].message
    assert problems[0].where.line == 7  # the line of the key, not of the document


def test_non_string_key_in_a_node_is_reported_on_its_own_line(registry: PluginRegistry) -> None:
    # YAML 1.1 reads `on:` as the boolean true.
    text = (
        "version: 2\n"
        "nodes:\n"
        "  - id: cam\n"
        "    kind: source\n"
        "    plugin: synthetic\n"
        "    on: 1\n"
        '  - {id: out, kind: sink, plugin: "null"}\n'
        "edges:\n"
        "  - {from: cam, to: out}\n"
    )
    result = validate_text(text, registry=registry)
    assert not result.report.valid
    problems = [p for p in result.report.problems if p.code in ("bad-value", "unknown-key")]
    assert len(problems) == 1, [(p.code, p.message) for p in result.report.problems]
    assert problems[0].where.line == 6


def test_complex_mapping_key_is_refused_as_yaml_syntax(registry: PluginRegistry) -> None:
    text = "version: 2\n? [a, b]\n: c\nnodes: []\n"
    problem = only_problem(validate_text(text, registry=registry), "yaml-syntax")
    assert "unhashable key" in problem.message
    assert problem.where.line == 2


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("\n  cam: {kind: source, plugin: synthetic}", "mapping"),
        (" 5", "number"),
        (" cam", "string"),
        (" true", "boolean"),
    ],
    ids=["mapping", "number", "string", "boolean"],
)
def test_nodes_that_are_not_a_list_are_a_bad_value(
    registry: PluginRegistry, value: str, shown: str
) -> None:
    result = validate_text(f"version: 2\nnodes:{value}\n", registry=registry)
    problem = only_problem(result, "bad-value")
    assert f"`nodes` must be a list of nodes, not a {shown}" in problem.message
    assert problem.where.line == 2


def test_unknown_keys_everywhere_are_all_reported_on_their_lines(
    tmp_path: Path, registry: PluginRegistry
) -> None:
    text = """\
version: 2
colour: red
nodes:
  - {id: cam, kind: source, plugin: synthetic, config: {count: 5, speed: 3}}
  - id: thin
    kind: transform
    plugin: sample
    config: {every: 2}
    priority: 1
  - id: out
    kind: sink
    plugin: "null"
    inbox:
      max: 10
      policy: block
      durable: {path: out.db, fsync: true}
edges:
  - {from: cam, to: thin}
  - {from: thin, to: out, weight: 2}
runtime: {allow_modules: [], metrics: 5}
"""
    result = validate_file(write(tmp_path, text), registry=registry)
    found = {(p.code, p.where.line) for p in result.report.problems}
    expected = {
        ("unknown-key", 2),  # colour
        ("bad-config", 4),  # config.speed
        ("unknown-key", 9),  # priority
        ("unknown-key", 15),  # inbox.policy
        ("unknown-key", 16),  # inbox.durable.fsync
        ("unknown-key", 19),  # edges[1].weight
        ("unknown-key", 20),  # runtime.metrics
    }
    assert expected <= found, sorted(found)
    messages = " | ".join(p.message for p in result.report.problems)
    for key in ("colour", "speed", "priority", "policy", "fsync", "weight", "metrics"):
        assert repr(key) in messages


def test_every_value_of_the_wrong_type_is_reported_in_one_pass(registry: PluginRegistry) -> None:
    text = """\
version: 2
nodes:
  - {id: 7, kind: source, plugin: synthetic}
  - {id: thin, kind: [transform], plugin: sample, config: {every: 2}}
  - {id: out, kind: sink, plugin: {name: "null"}, inbox: 5, config: [1]}
edges: {from: cam, to: out}
runtime: [1]
"""
    result = validate_text(text, registry=registry)
    found = {(p.code, p.where.line) for p in result.report.problems}
    lines = {line for code, line in found if code == "bad-value"}
    assert ("bad-id", 3) in found  # `id: 7`: a number, with a hint to quote it
    assert {4, 5, 6, 7} <= set(lines), [(p.code, p.message) for p in result.report.problems]
