"""Safe YAML loading: positions of values, duplicate keys, limits."""

from __future__ import annotations

import pytest
import yaml

from schnitzel.spec import yaml_source
from schnitzel.spec.yaml_source import LIMITS, LoadLimits, YamlLoadFailed, load_yaml

TEXT = """\
version: 2
nodes:
  - id: cam
    kind: source
    config:
      rate_hz: 5
  - {id: out, kind: sink}
"""


def test_every_value_is_mapped_to_its_line_and_column() -> None:
    doc = load_yaml(TEXT)
    positions = doc.source_map.positions
    assert positions[("version",)] == (1, 1)
    assert positions[("nodes", 0)] == (3, 5)
    assert positions[("nodes", 0, "config", "rate_hz")] == (6, 7)
    assert positions[("nodes", 1, "kind")] == (7, 15)


def test_unknown_path_falls_back_to_the_nearest_ancestor() -> None:
    doc = load_yaml(TEXT)
    assert doc.source_map.locate(("nodes", 0, "config", "missing", 3)) == (5, 5)
    assert doc.source_map.locate(("nope",)) == (1, 1)


def test_duplicate_keys_are_reported_with_both_lines() -> None:
    doc = load_yaml("a: 1\nb: 2\na: 3\n")
    [warning] = doc.problems
    assert warning.code == "duplicate-key" and warning.line == 3
    assert "first on line 1" in warning.message


def test_merge_keys_are_not_duplicates() -> None:
    doc = load_yaml("base: &b {x: 1}\nn: {<<: *b, <<: *b, y: 2}\n")
    assert doc.problems == [] and doc.data["n"] == {"x": 1, "y": 2}


def test_aliases_within_the_limit_load() -> None:
    doc = load_yaml("d: &d {rate_hz: 5}\nn: [*d, *d]\n")
    assert doc.data["n"] == [{"rate_hz": 5}, {"rate_hz": 5}]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "empty-file"),
        ("# only a comment\n", "empty-file"),
        ("a: [1, 2\n", "yaml-syntax"),
        ("a: 1\n---\nb: 2\n", "multiple-documents"),
        ("a: &x [*x]\n", "recursive-alias"),
        ("a: !!python/object/apply:os.system ['true']\n", "yaml-syntax"),
        ("[" * 65 + "]" * 65, "too-deep"),
    ],
)
def test_unloadable_text_names_the_reason(text: str, code: str) -> None:
    with pytest.raises(YamlLoadFailed) as caught:
        load_yaml(text)
    assert caught.value.problem.code == code


def test_alias_expansion_is_counted_against_the_limit() -> None:
    # 19 values written (an alias counts as one); expanded: *a adds 4, *b adds 20, so
    # 4 * 4 + 4 * 20 = 96 values added by the aliases.
    text = "a: &a [1, 1, 1, 1]\nb: &b [*a, *a, *a, *a]\nc: [*b, *b, *b, *b]\n"
    load_yaml(text, LoadLimits(max_nodes=96))
    with pytest.raises(YamlLoadFailed) as caught:
        load_yaml(text, LoadLimits(max_nodes=95))
    assert caught.value.problem.code == "too-large-expanded"
    assert "alias bomb" in caught.value.problem.message


def test_values_written_out_are_not_an_alias_bomb_however_many() -> None:
    # A 5.5 MB graph without aliases was refused as "an alias bomb?": only what aliases add
    # counts against the limit; written values are bounded by the file size.
    text = "nodes:\n" + "".join(f"  - {{id: n{i}, config: {{a: 1, b: 2}}}}\n" for i in range(500))
    document = load_yaml(text, LoadLimits(max_nodes=100))
    assert len(document.data["nodes"]) == 500
    with pytest.raises(YamlLoadFailed) as caught:  # the same limit still stops a bomb
        load_yaml(
            text + "x: &x [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n" + "y: [" + "*x, " * 11 + "]\n",
            LoadLimits(max_nodes=100),
        )
    assert caught.value.problem.code == "too-large-expanded"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("a:\n  t: 2024-13-45\n", 2, "cannot read '2024-13-45' as YAML timestamp: month"),
        ("version: 2\n2024-02-30: x\n", 2, "as YAML timestamp: day is out of range"),
        ('v: !!int "abc"\n', 1, "cannot read 'abc' as YAML int"),
        ('v: !!float "x"\n', 1, "as YAML float"),
        ('v: !!timestamp "nope"\n', 1, "as YAML timestamp"),
        ("v: " + "9" * 5000 + "\n", 1, "as YAML int: Exceeds the limit"),
    ],
)
def test_values_yaml_cannot_construct_are_reported_on_their_line(
    text: str, line: int, message: str
) -> None:
    with pytest.raises(YamlLoadFailed) as caught:
        load_yaml(text)
    problem = caught.value.problem
    assert problem.code == "yaml-syntax" and problem.line == line
    assert message in problem.message and "quote the value" in problem.hint


def test_the_parsers_own_depth_limit_is_reported_as_too_deep(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # PyYAML 6.0.4 refuses over 1,000 nested levels itself, and its scanner reads ahead of the
    # events the depth check counts; 6.0.3 has no such limit. The error is raised here as 6.0.4
    # raises it, so the test holds whichever version is installed.
    mark = yaml.Mark("<unicode string>", 1000, 0, 1000, None, None)
    error = yaml.scanner.ScannerError(
        "while increasing flow level", mark, "exceeded maximum nesting depth", mark
    )

    def refuse(text: str, limits: LoadLimits) -> None:
        raise error

    monkeypatch.setattr(yaml_source, "_check_shape", refuse)
    with pytest.raises(YamlLoadFailed) as failed:
        load_yaml("[" * 2000)
    problem = failed.value.problem
    assert problem.code == "too-deep"
    assert f"deeper than {LIMITS.max_depth} levels" in problem.message
    assert (problem.line, problem.column) == (1, 1001)


def test_other_scanner_errors_stay_yaml_syntax() -> None:
    with pytest.raises(YamlLoadFailed) as failed:
        load_yaml("a: [1, 2\nb: 3\n")
    assert failed.value.problem.code == "yaml-syntax"


def test_a_tab_in_the_indentation_is_named_in_the_hint() -> None:
    # libyaml says "found character that cannot start any token", without the character.
    with pytest.raises(YamlLoadFailed) as failed:
        load_yaml("version: 2\nnodes:\n\t- {id: a}\n")
    problem = failed.value.problem
    assert (problem.code, problem.line, problem.column) == ("yaml-syntax", 3, 1)
    assert problem.hint == "a tab here: YAML indents with spaces only; replace the tab with spaces"
