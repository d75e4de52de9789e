"""Property tests: whatever text it gets, the validator returns a report and never raises.

(a) the valid graphs shipped in graphs/ with random text mutations;
(b) random YAML documents, often shaped like graphs, built from the real key vocabulary;
(c) arbitrary text.

Each run checks the same invariants: a ValidationResult comes back; no graph without an
error and no error with a graph; every problem has a code, a message and a line inside the
file (or none); the report renders as text and as JSON.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schnitzel.registry import PluginRegistry
from schnitzel.registry.registry import ALLOW_MODULES_ENV
from schnitzel.validate import ValidationResult, validate_text
from tests.conftest import GENERATED_INPUTS

pytestmark = pytest.mark.slow  # fuzzing: thousands of generated documents

REPO = Path(__file__).resolve().parent.parent
VALID_GRAPHS = sorted(
    path for path in (REPO / "graphs").glob("*.yaml") if path.name not in GENERATED_INPUTS
)
"""The shipped graphs that are valid as cloned (those reading a generated input are not)."""
REGISTRY = PluginRegistry.from_entry_points()

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module", autouse=True)
def _no_allowlist_from_the_environment() -> Iterator[None]:
    # Random `module:Class` references must never import anything the test did not choose.
    saved = os.environ.pop(ALLOW_MODULES_ENV, None)
    yield
    if saved is not None:
        os.environ[ALLOW_MODULES_ENV] = saved


YAML_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


def check_invariants(text: str, result: object) -> None:
    assert isinstance(result, ValidationResult)
    report = result.report
    if result.graph is None:
        assert report.errors, "no graph, yet no error says why"
    else:
        assert report.valid, "a graph was returned with errors in the report"
    # YAML also breaks lines at CR, NEL, LS and PS; a parser may point just past the end.
    last_line = len(YAML_LINE_BREAK.findall(text)) + 2
    for problem in report.problems:
        assert isinstance(problem.code, str)
        assert problem.code.strip()
        assert isinstance(problem.message, str)
        assert problem.message.strip()
        line = problem.where.line
        assert line is None or 1 <= line <= last_line, (problem.code, line, last_line)
        assert problem.render()
    json.dumps([p.to_json() for p in report.sorted_problems()])


def validate(text: str, path: Path | None = None) -> ValidationResult:
    result = validate_text(text, registry=REGISTRY, path=path)
    check_invariants(text, result)
    return result


def test_shipped_graphs_are_valid() -> None:
    assert VALID_GRAPHS, "graphs/*.yaml: no graph to mutate"
    for path in VALID_GRAPHS:
        result = validate_text(path.read_text(encoding="utf-8"), registry=REGISTRY, path=path)
        assert result.report.valid, [p.render() for p in result.report.problems]


# -- (a) mutations of valid graphs -----------------------------------------------------------

YAML_CHARS = st.sampled_from([*":-{}[],&*!|>'\"#%@` \t\n?~.", "\r", "\x00", "\x1b"])
# Any code point, lone surrogates included (validate_text is public API: a str need not come
# from a UTF-8 file).
CHARS = st.characters()
ANY_CHAR = st.one_of(YAML_CHARS, CHARS, st.sampled_from(list("abcxyz0129_")))


@st.composite
def mutation(draw: st.DrawFn, text: str) -> str:
    lines = text.split("\n")
    op = draw(
        st.sampled_from(
            [
                "delete",
                "insert",
                "replace",
                "drop-line",
                "duplicate-line",
                "swap-lines",
                "indent",
                "dedent",
                "tab",
            ]
        )
    )
    if op in ("delete", "insert", "replace"):
        at = draw(st.integers(0, max(len(text) - 1, 0)))
        if op == "delete":
            size = draw(st.integers(1, 8))
            return text[:at] + text[at + size :]
        chars = draw(st.text(ANY_CHAR, min_size=1, max_size=6))
        if op == "insert":
            return text[:at] + chars + text[at:]
        return text[:at] + chars + text[at + len(chars) :]
    i = draw(st.integers(0, len(lines) - 1))
    if op == "drop-line":
        del lines[i]
    elif op == "duplicate-line":
        lines.insert(i, lines[i])
    elif op == "swap-lines":
        j = draw(st.integers(0, len(lines) - 1))
        lines[i], lines[j] = lines[j], lines[i]
    elif op == "indent":
        lines[i] = " " * draw(st.integers(1, 6)) + lines[i]
    elif op == "dedent":
        lines[i] = lines[i].lstrip(" ")
    else:
        lines[i] = "\t" + lines[i]
    return "\n".join(lines)


@st.composite
def mutated_graph(draw: st.DrawFn) -> tuple[Path, str]:
    path = draw(st.sampled_from(VALID_GRAPHS))
    text = path.read_text(encoding="utf-8")
    for _ in range(draw(st.integers(1, 5))):
        text = draw(mutation(text))
    return path, text


@FUZZ
@given(mutated_graph())
def test_mutated_valid_graphs_never_make_the_validator_raise(case: tuple[Path, str]) -> None:
    path, text = case
    first = validate(text, path)  # `path` anchors the graphs' relative input files
    again = validate_text(text, registry=REGISTRY, path=path)
    assert again.report.problems == first.report.problems  # deterministic


# -- (b) random documents, often shaped like graphs ------------------------------------------

GRAPH_KEYS = ["version", "nodes", "edges", "runtime"]
NODE_KEYS = ["id", "kind", "plugin", "config", "inbox"]
EDGE_KEYS = ["from", "to"]
INBOX_KEYS = ["max", "overflow", "durable", "path", "max_bytes"]
CONFIG_KEYS = [
    "count",
    "rate_hz",
    "kind",
    "source_id",
    "payload",
    "every",
    "key",
    "window",
    "window_s",
    "initial",
    "path",
    "resume",
    "url",
    "timeout_s",
    "headers",
    "token_env",
    "verify_tls",
]
VOCABULARY = GRAPH_KEYS + NODE_KEYS + EDGE_KEYS + INBOX_KEYS + CONFIG_KEYS
NODE_KINDS = ["source", "transform", "compute", "policy", "sink", "delay"]
# Only modules that are safe to import may appear in `module:Class` references.
SAFE_REFERENCES = ["json:JSONDecoder", "os:system", "schnitzel_plugins.core:Sample", ":", "x:"]
SAFE_MODULES = ["json", "os", "schnitzel_plugins"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(CHARS, max_size=20),
    st.sampled_from(VOCABULARY + NODE_KINDS + REGISTRY.names()),
    st.dates(),
)
keys = st.one_of(
    st.sampled_from(VOCABULARY),
    st.text(CHARS, max_size=12),
    st.integers(-5, 5),
    st.booleans(),
    st.none(),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(keys, inner, max_size=6),
    ),
    max_leaves=40,
)

NODE_IDS = ["cam", "imu", "mix", "thin", "back", "out", "log", "a", "b", "c"]
BAD_IDS = ["Bad", "x.y", "", "a b", "-" * 65]
READINGS = str(REPO / "graphs" / "data" / "readings.jsonl")
PLUGINS = [(r.plugin.node_kind, r.plugin.name) for r in REGISTRY.plugins()]


def weighted(*options: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of several strategies, chosen with the given weights.

    (`st.one_of(s, s, s, t)` is not weighted: equal branches count once.)
    """
    table = [strategy for weight, strategy in options for _ in range(weight)]
    return st.integers(0, len(table) - 1).flatmap(lambda i: table[i])


def mostly(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Nine times in ten the plausible value, else any document at all."""
    return weighted((9, strategy), (1, documents))


def good_or_bad(good: Any, bad: Any) -> st.SearchStrategy[Any]:
    """Five times in six a value the plugin accepts, else one it refuses."""
    as_strategy = [
        x if isinstance(x, st.SearchStrategy) else st.sampled_from(x) for x in (good, bad)
    ]
    return weighted((5, as_strategy[0]), (1, as_strategy[1]))


PLAUSIBLE_CONFIGS: dict[str, st.SearchStrategy[Any]] = {
    "synthetic": st.fixed_dictionaries(
        {},
        optional={
            "count": good_or_bad(st.one_of(st.none(), st.integers(0, 10)), [-1]),
            "rate_hz": good_or_bad(st.one_of(st.none(), st.floats(0.1, 1000)), [-1.0, 0, 2e6]),
            "kind": good_or_bad(["sensor", "frame", "event"], ["Bad", ""]),
        },
    ),
    "sample": st.fixed_dictionaries({"every": good_or_bad(st.integers(1, 5), [0, -1])}),
    "dedup": st.fixed_dictionaries(
        {}, optional={"key": good_or_bad(["packet_id", "payload.x", "meta.k"], ["nope"])}
    ),
    "delay": st.fixed_dictionaries({"initial": good_or_bad(scalars, [None])}),
    "jsonl": st.fixed_dictionaries({"path": good_or_bad([READINGS], ["", "missing.jsonl"])}),
    "http": st.fixed_dictionaries(
        {"url": good_or_bad(["http://127.0.0.1:8080/x"], ["nope", "ftp://x"])}
    ),
}


configs = st.dictionaries(
    st.one_of(st.sampled_from(CONFIG_KEYS), keys), st.one_of(scalars, documents), max_size=4
)
inboxes = st.fixed_dictionaries(
    {},
    optional={
        "max": mostly(good_or_bad(st.integers(1, 1000), [-2, 0, 10**8])),
        "overflow": mostly(good_or_bad(["block", "drop_new", "drop_oldest"], ["drop"])),
        "durable": mostly(
            st.fixed_dictionaries(
                {"path": good_or_bad(["state/x.db"], [""])},
                optional={"max_bytes": good_or_bad(st.integers(1, 10**9), [-1, 0])},
            )
        ),
    },
)


@st.composite
def graph_nodes(draw: st.DrawFn, node_id: str, role: str | None = None) -> dict[Any, Any]:
    candidates = [p for p in PLUGINS if role is None or p[0] == role]
    kind, plugin = draw(st.sampled_from(candidates))
    node: dict[Any, Any] = {"id": node_id, "kind": kind, "plugin": plugin}
    config = draw(weighted((19, PLAUSIBLE_CONFIGS.get(plugin, st.just({}))), (1, configs)))
    if config != {} or draw(st.booleans()):
        node["config"] = config
    if draw(st.integers(0, 3)) == 0:
        node["inbox"] = draw(inboxes)
    # Corruptions: a field removed, replaced by anything, a wrong kind, an unknown key.
    for _ in range(draw(st.sampled_from([0] * 8 + [1, 2]))):
        field = draw(st.sampled_from(["id", "kind", "plugin", "config", "inbox", "extra"]))
        action = draw(st.sampled_from(["drop", "replace", "plausible"]))
        if action == "drop":
            node.pop(field, None)
        elif action == "replace":
            node[field] = draw(documents)
        elif field == "id":
            node["id"] = draw(st.sampled_from(NODE_IDS + BAD_IDS))
        elif field == "kind":
            node["kind"] = draw(st.sampled_from([*NODE_KINDS, "sorce"]))
        elif field == "plugin":
            node["plugin"] = draw(st.sampled_from([*REGISTRY.names(), "nul", *SAFE_REFERENCES]))
        else:
            node[draw(st.sampled_from(VOCABULARY))] = draw(scalars)
    return node


def wire(nodes: list[dict[Any, Any]]) -> list[dict[str, Any]]:
    """Edges that connect every node the way a working graph would."""
    ids: dict[str, list[str]] = {"source": [], "sink": [], "middle": []}
    for node in nodes:
        node_id, kind = node.get("id"), node.get("kind")
        if isinstance(node_id, str):
            role = kind if kind in ("source", "sink") else "middle"
            ids[role].append(node_id)
    middle = ids["middle"]
    pairs = list(itertools.pairwise(middle))
    heads, tails = (middle[:1], middle[-1:]) if middle else (ids["sink"], ids["source"])
    pairs += [(s, h) for s in ids["source"] for h in heads]
    if middle:
        pairs += [(t, k) for t in tails for k in ids["sink"]]
    return [{"from": a, "to": b} for a, b in pairs]


@st.composite
def graphs(draw: st.DrawFn) -> Any:
    ids = draw(st.lists(st.sampled_from(NODE_IDS), min_size=2, max_size=7, unique=True))
    # Usually the first node is a source and the last a sink, as in a working graph.
    roles = [None] * len(ids)
    if draw(st.integers(0, 4)):
        roles[0], roles[-1] = "source", "sink"
    nodes = [draw(graph_nodes(node_id, role)) for node_id, role in zip(ids, roles, strict=True)]
    if draw(st.integers(0, 5)) == 0:  # a duplicate id
        nodes.append(draw(graph_nodes(draw(st.sampled_from(ids)))))
    ends = weighted(
        (6, st.sampled_from(ids)),
        (
            1,
            st.builds(
                lambda n, p: f"{n}.{p}", st.sampled_from(ids), st.sampled_from(["in", "out", "x"])
            ),
        ),
        (1, st.sampled_from(NODE_IDS + BAD_IDS)),
        (1, scalars),
    )
    edge = st.fixed_dictionaries({"from": ends, "to": ends})
    edge = weighted((9, edge), (1, st.dictionaries(st.sampled_from([*EDGE_KEYS, "via"]), ends)))
    edges = draw(st.lists(edge, max_size=10))
    if draw(st.sampled_from([True, True, False])):  # sources -> the others -> sinks
        edges = wire(nodes) + edges[: draw(st.sampled_from([0, 0, 0, 1, 2]))]
    graph: dict[Any, Any] = {"version": draw(mostly(st.just(2))), "nodes": nodes, "edges": edges}
    if draw(st.booleans()):
        graph["runtime"] = draw(
            mostly(
                st.fixed_dictionaries(
                    {}, optional={"allow_modules": st.lists(st.sampled_from(SAFE_MODULES))}
                )
            )
        )
    for _ in range(draw(st.integers(0, 1))):
        key = draw(st.sampled_from(["version", "nodes", "edges", "runtime", "extra"]))
        if draw(st.booleans()):
            graph.pop(key, None)
        else:
            graph[key] = draw(documents)
    return graph


@st.composite
def yaml_documents(draw: st.DrawFn) -> str:
    document = draw(weighted((3, graphs()), (1, documents)))
    return yaml.safe_dump(
        document,
        sort_keys=False,
        default_flow_style=draw(st.sampled_from([False, True, None])),
        allow_unicode=draw(st.booleans()),
    )


# Both properties of a random document are checked on the same 300 documents: generating
# and validating them is the cost, and two tests drew and validated 300 each.
@FUZZ
@given(yaml_documents())
def test_random_yaml_documents_never_make_the_validator_raise_and_problems_point_at_a_line(
    text: str,
) -> None:
    result = validate(text)
    if result.graph is not None:  # what was accepted is exactly what the file says
        document = yaml.safe_load(text)
        assert set(result.graph.nodes) == {node["id"] for node in document["nodes"]}
        assert len(result.graph.edges) == len(document.get("edges") or [])
    loaded = not any(
        p.code in ("yaml-syntax", "empty-file", "too-deep", "too-large-expanded")
        for p in result.report.problems
    )
    if loaded and isinstance(yaml.safe_load(text), dict):
        # Once the file is a mapping, each problem points into it (a line to go and fix).
        for problem in result.report.errors:
            assert problem.where.line is not None, problem


# -- (c) arbitrary text ----------------------------------------------------------------------


@FUZZ
@given(st.text(st.one_of(YAML_CHARS, CHARS), max_size=300))
def test_arbitrary_text_never_makes_the_validator_raise(text: str) -> None:
    validate(text)


# -- (d) explicit tags and values YAML's resolver turns into dates and numbers ------------------

TAGS = st.sampled_from(
    [
        "!!int",
        "!!float",
        "!!bool",
        "!!null",
        "!!timestamp",
        "!!binary",
        "!!str",
        "!!set",
        "!!omap",
        "!!pairs",
        "!!seq",
        "!!map",
        "!custom",
        "!!python/name:os.system",
    ]
)
RESOLVED_LOOKALIKES = st.one_of(
    st.from_regex(r"\A[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([Tt ][0-9]{1,2}:[0-9]{2}:[0-9]{2})?\Z"),
    st.from_regex(r"\A[-+]?(0x[0-9a-fA-F_]+|0o?[0-7_]+|[0-9][0-9_:]*(\.[0-9_]*)?)\Z"),
    st.integers(1, 6000).map(lambda n: "9" * n),
    st.sampled_from([".nan", ".inf", "-.Inf", "~", "yes", "off", "0b101", "1_000"]),
)


@FUZZ
@given(
    tag=st.one_of(st.none(), TAGS),
    value=st.one_of(RESOLVED_LOOKALIKES, st.text(CHARS, max_size=12)),
    where=st.sampled_from(["version", "runtime", "key", "config"]),
)
def test_tags_and_lookalike_values_never_make_the_validator_raise(
    tag: str | None, value: str, where: str
) -> None:
    scalar = f"{tag} {json.dumps(value)}" if tag else value
    graph = {
        "version": f"version: {scalar}\nnodes: []\n",
        "runtime": f"version: 2\nnodes: []\nruntime: {scalar}\n",
        "key": f"version: 2\n{scalar}: 1\n",
        "config": (
            "version: 2\nnodes:\n  - id: s\n    kind: source\n    plugin: synthetic\n"
            f"    config: {{payload: {{v: {scalar}}}}}\n"
        ),
    }[where]
    validate(graph)
