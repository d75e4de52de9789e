"""The corpus of invalid graph files: each file says, in its header, every problem it must get.

Header lines (comments at the very top of the file, before any YAML):

    # expect: <code> line=<N> "<substring of the message>"     one per expected problem
    # expect-hint: <code> "<substring of the hint>"            optional, checks did-you-mean

`line=` is optional and given whenever the problem has a line. Every `expect` line must be
matched by its own problem (code, line, message), and the report may hold no error that no
`expect` line accounts for: each file lists ALL its problems, found in one pass.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from schnitzel.registry import PluginRegistry
from schnitzel.registry.registry import ALLOW_MODULES_ENV
from schnitzel.validate import Problem, validate_file
from tests.conftest import run_cli

CORPUS = Path(__file__).parent / "graphs" / "invalid"
CORPUS_FILES = sorted(CORPUS.glob("*.yaml"))

_EXPECT = re.compile(r'^# expect: (?P<code>[a-z-]+)(?: line=(?P<line>\d+))? "(?P<text>.*)"\s*$')
_EXPECT_HINT = re.compile(r'^# expect-hint: (?P<code>[a-z-]+) "(?P<text>.*)"\s*$')


@dataclass(frozen=True)
class Expected:
    code: str
    line: int | None
    text: str

    def matches(self, problem: Problem) -> bool:
        return (
            problem.code == self.code
            and (self.line is None or problem.where.line == self.line)
            and self.text in problem.message
        )

    def __str__(self) -> str:
        line = f" line={self.line}" if self.line is not None else ""
        return f'{self.code}{line} "{self.text}"'


def read_header(path: Path) -> tuple[list[Expected], list[tuple[str, str]]]:
    """The `expect` and `expect-hint` lines of the comment block at the top of a file."""
    expected: list[Expected] = []
    hints: list[tuple[str, str]] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        if not raw.startswith("#"):
            break
        if raw.startswith("# expect"):
            found = _EXPECT.match(raw)
            hint = _EXPECT_HINT.match(raw)
            assert found or hint, f"{path.name}: malformed header line {raw!r}"
            if found:
                line = found["line"]
                expected.append(Expected(found["code"], int(line) if line else None, found["text"]))
            elif hint:
                hints.append((hint["code"], hint["text"]))
    return expected, hints


def match_all(expected: list[Expected], problems: list[Problem]) -> dict[int, int]:
    """A one-to-one matching of expectations to problems (expectation -> problem index),
    as large as possible (augmenting paths: two expectations never claim one problem)."""
    owner: dict[int, int] = {}  # problem index -> expectation index

    def claim(e: int, seen: set[int]) -> bool:
        for p, problem in enumerate(problems):
            if p in seen or not expected[e].matches(problem):
                continue
            seen.add(p)
            if p not in owner or claim(owner[p], seen):
                owner[p] = e
                return True
        return False

    for e in range(len(expected)):
        claim(e, set())
    return {e: p for p, e in owner.items()}


def describe(problems: list[Problem]) -> str:
    return (
        "\n".join(
            f"  {p.severity} {p.code} line={p.where.line}: {p.message}  (hint: {p.hint})"
            for p in problems
        )
        or "  (no problems)"
    )


@pytest.fixture(autouse=True)
def _no_allowlist_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ALLOW_MODULES_ENV, raising=False)


# Every rule a graph file can break with the built-in plugins. Not here: kind-mismatch and
# not-portable (no built-in plugin restricts `accepts` or emits inproc_any payloads; see
# test_validator.py), file-too-large and not-text (test_hostile_input.py: no comment header).
RULES = {
    "bad-dead-letter",
    "yaml-syntax",
    "empty-file",
    "not-a-mapping",
    "multiple-documents",
    "too-deep",
    "too-large-expanded",
    "recursive-alias",
    "duplicate-key",
    "unknown-key",
    "missing-key",
    "bad-version",
    "no-nodes",
    "bad-id",
    "duplicate-id",
    "bad-value",
    "unknown-plugin",
    "plugin-not-allowed",
    "plugin-load-failed",
    "bad-config",
    "edge-missing-node",
    "bad-port",
    "duplicate-edge",
    "source-has-input",
    "sink-has-output",
    "unfed-node",
    "dangling-output",
    "unreachable-node",
    "no-source",
    "cycle-without-delay",
    "environment",
    "source-inbox",
    "shared-durable-path",
    "durable-path",
}


def test_corpus_has_a_file_for_every_rule_and_each_file_states_its_problems() -> None:
    assert len(CORPUS_FILES) >= 34
    covered: set[str] = set()
    for path in CORPUS_FILES:
        expected, _ = read_header(path)
        assert expected, f"{path.name} has no `# expect:` line in its header"
        covered.update(e.code for e in expected)
    assert sorted(RULES - covered) == []


@pytest.mark.parametrize("path", CORPUS_FILES, ids=[p.name for p in CORPUS_FILES])
def test_invalid_graph_reports_exactly_the_expected_problems(
    path: Path, registry: PluginRegistry
) -> None:
    expected, hints = read_header(path)
    result = validate_file(path, registry=registry)
    report = result.report
    problems = report.sorted_problems()
    listing = describe(problems)

    assert not report.valid, f"{path.name} was accepted:\n{listing}"
    assert result.graph is None

    matched = match_all(expected, problems)
    missing = [str(e) for i, e in enumerate(expected) if i not in matched]
    assert not missing, f"{path.name}: expected problems not reported: {missing}\ngot:\n{listing}"

    used = set(matched.values())
    unexpected = [p for i, p in enumerate(problems) if i not in used and p.severity == "error"]
    assert not unexpected, (
        f"{path.name}: errors the header does not list:\n{describe(unexpected)}\n"
        f"all problems:\n{listing}"
    )

    for code, text in hints:
        assert any(p.code == code and text in p.hint for p in problems), (
            f"{path.name}: no {code} problem has a hint containing {text!r}\ngot:\n{listing}"
        )

    for problem in problems:
        assert problem.message.strip(), f"{path.name}: a {problem.code} problem has no message"
        assert problem.where.file == str(path)


@pytest.mark.parametrize("name", ["combo-topology.yaml", "duplicate-key.yaml"])
def test_cli_validate_exits_1_and_lists_every_problem(name: str) -> None:
    path = CORPUS / name
    expected, _ = read_header(path)
    done = run_cli("validate", str(path))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    for item in expected:
        assert f"[{item.code}]" in done.stdout
    assert "invalid" in done.stdout


@pytest.mark.parametrize("name", ["combo-topology.yaml", "duplicate-key.yaml"])
def test_cli_validate_json_is_parseable_and_says_invalid(name: str) -> None:
    path = CORPUS / name
    expected, _ = read_header(path)
    done = run_cli("validate", str(path), "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["valid"] is False
    assert report["errors"] == len(expected)
    codes = sorted(p["code"] for p in report["problems"])
    assert codes == sorted(e.code for e in expected)
    for problem in report["problems"]:
        assert problem["file"] == str(path)
        assert isinstance(problem["line"], int)


def test_cli_validate_of_a_missing_file_exits_2_without_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-graph.yaml"
    done = run_cli("validate", str(missing))
    assert done.returncode == 2
    assert "Traceback" not in done.stdout + done.stderr
    assert "no such file" in done.stderr


def test_cli_validate_json_of_a_missing_file_exits_2_with_json_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-graph.yaml"
    done = run_cli("validate", str(missing), "--json")
    assert done.returncode == 2
    assert "Traceback" not in done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["valid"] is False
    assert "no such file" in report["error"]


def test_cli_validate_of_a_directory_exits_2_without_traceback(tmp_path: Path) -> None:
    done = run_cli("validate", str(tmp_path))
    assert done.returncode == 2
    assert "Traceback" not in done.stdout + done.stderr
    assert "is a directory" in done.stderr
