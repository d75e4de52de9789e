"""Safe YAML loading for graph files: bounded, single-document, with a line for every value.

PyYAML alone would let a hostile file hang or exhaust memory (alias bombs expand
exponentially, deep nesting overflows the stack of the C composer) and forgets where each value
came from. So a graph file is loaded in three steps:

1. a streaming pass over the parser's events checks size, nesting depth and how many values
   the aliases add when expanded, without building anything;
2. the document is composed into YAML nodes, and the node tree is walked once to map each
   path (`("nodes", 3, "config", "rate_hz")`) to its line and column, and to find duplicate
   keys, which YAML would silently overwrite;
3. the safe loader constructs the Python values from the nodes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from schnitzel.errors import GraphLoadError
from schnitzel.spec.yaml_regex import defer_reader_regex

defer_reader_regex()  # before PyYAML's first import (schnitzel/spec/yaml_regex.py)

import yaml  # noqa: E402
from yaml.constructor import SafeConstructor  # noqa: E402

__all__ = [
    "LIMITS",
    "LoadLimits",
    "SourceMap",
    "YamlDocument",
    "YamlLoadFailed",
    "YamlProblem",
    "decode_text",
    "load_yaml",
    "read_graph_bytes",
    "too_large",
    "yaml_literal",
]

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml


class _GuardedConstruction:
    """Turns the plain exceptions of PyYAML's value constructors into marked YAML errors.

    `2024-13-45` (a timestamp with month 13), `!!int abc`, `!!bool 9`, `!!timestamp nope` or
    a 5,000-digit number make PyYAML raise ValueError, KeyError or AttributeError with no line;
    the operator needs the line and a sentence, not a traceback.
    """

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)  # type: ignore[misc]
        except yaml.YAMLError:
            raise
        except Exception as exc:  # ValueError, KeyError, AttributeError, ... from PyYAML
            tag = node.tag.rsplit(":", 1)[-1]
            value = node.value if isinstance(node, yaml.ScalarNode) else f"a {tag}"
            text = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {text} as YAML {tag}: {exc}", node.start_mark
            ) from exc


class _Loader(_GuardedConstruction, _BaseLoader):  # type: ignore[misc, valid-type]
    """The safe loader (libyaml's when installed) with guarded construction."""


class _KeyConstructor(_GuardedConstruction, SafeConstructor):
    """Constructs mapping keys the way the loader will, for positions and duplicates."""


Path_ = tuple[str | int, ...]


class LoadLimits(NamedTuple):
    """Bounds that keep a hostile or mistaken file from hanging the validator."""

    max_bytes: int = 8 * 1024 * 1024
    """A graph file describes nodes, not data: 8 MiB holds tens of thousands of nodes."""
    max_depth: int = 64
    """Nesting depth of mappings and sequences."""
    max_nodes: int = 200_000
    """YAML values the aliases add to the document when expanded (stops "billion laughs").

    Values written out in the file are bounded by `max_bytes` alone: a big graph without
    aliases is a big graph, not a bomb. An alias adds the values of what it refers to, less
    one (itself); the checks that walk the loaded document see every one of them, so this
    bounds what a hostile file of a few lines can make them do.
    """


LIMITS = LoadLimits()


class YamlProblem(NamedTuple):
    """Why a text could not be loaded, with the line where the loader stopped."""

    code: str
    message: str
    hint: str
    line: int | None = None
    column: int | None = None


@dataclass
class SourceMap:
    """Where each value of the document stands in the file (1-based lines and columns)."""

    positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def locate(self, path: Path_) -> tuple[int, int] | None:
        """The position of `path`, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            found = self.positions.get(path[:end])
            if found is not None:
                return found
        return None


class YamlDocument(NamedTuple):
    """A loaded document: its data, where each value stands, and problems that did not stop
    loading (duplicate keys)."""

    data: Any
    source_map: SourceMap
    problems: list[YamlProblem]


class YamlLoadFailed(GraphLoadError):
    """Raised by `load_yaml` with the problem that stopped loading."""

    def __init__(self, problem: YamlProblem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def read_graph_bytes(path: Path, limits: LoadLimits = LIMITS) -> bytes:
    """The bytes of a graph file, refusing anything over `limits.max_bytes` before reading it."""
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise YamlLoadFailed(too_large(size, limits, exact=True))
    with path.open("rb") as handle:
        data = handle.read(limits.max_bytes + 1)
    if len(data) > limits.max_bytes:  # grew while we read, or a special file
        raise YamlLoadFailed(too_large(len(data), limits))
    return data


def too_large(size: int, limits: LoadLimits, exact: bool = False) -> YamlProblem:
    """The problem for an oversized file; `exact` when `size` is the whole file's size (not
    what was read before stopping at the limit)."""
    limit = f"{limits.max_bytes // 1_048_576} MiB"
    measured = f"is {size / 1_048_576:.1f} MiB" if exact else f"is larger than {limit}"
    return YamlProblem(
        "file-too-large",
        f"the file {measured}; a graph file may be at most {limit}",
        "a graph file describes nodes and edges; keep data in input files that a source reads",
    )


def decode_text(data: bytes) -> str:
    """UTF-8 text from bytes, refusing binary files with a clear reason."""
    if b"\x00" in data:
        raise YamlLoadFailed(
            YamlProblem(
                "not-text",
                "the file contains NUL bytes: it is binary, not a YAML graph file",
                "pass the path of the graph's .yaml file",
            )
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise YamlLoadFailed(
            YamlProblem(
                "not-text",
                f"the file is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})",
                "save the graph file as UTF-8",
                line=line,
            )
        ) from exc


def load_yaml(text: str, limits: LoadLimits = LIMITS) -> YamlDocument:
    """Load one YAML document safely. Raises YamlLoadFailed with the reason and the line."""
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:  # lone surrogates: text that no file could hold
        raise YamlLoadFailed(
            YamlProblem(
                "not-text",
                f"the text holds an invalid character (U+{ord(text[exc.start]):04X}) that UTF-8 "
                "cannot represent",
                "save the graph file as UTF-8",
                line=text.count("\n", 0, exc.start) + 1,
            )
        ) from exc
    if size > limits.max_bytes:
        raise YamlLoadFailed(too_large(size, limits, exact=True))
    source_map = SourceMap()
    problems: list[YamlProblem] = []
    try:
        _check_shape(text, limits)
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                raise YamlLoadFailed(
                    YamlProblem(
                        "empty-file",
                        "the file is empty: it holds no YAML document",
                        "start the graph with `version: 2`, then `nodes:` and `edges:`",
                    )
                )
            # Map positions before constructing: construction flattens merge keys (`<<`)
            # in place, which would make merged keys look like duplicates.
            _map_positions(node, (), source_map, problems, set(), _KeyConstructor())
            data = loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        raise YamlLoadFailed(
            _nesting_refused(exc, limits) or _from_marked_error(exc, text)
        ) from exc
    except yaml.reader.ReaderError as exc:  # control characters and the like
        raise YamlLoadFailed(
            YamlProblem(
                "yaml-syntax",
                f"not valid YAML: character 0x{exc.character:02x} is not allowed: {exc.reason}",
                "remove the character (an escape sequence pasted from a terminal?)",
                line=text.count("\n", 0, exc.position) + 1,
            )
        ) from exc
    except yaml.YAMLError as exc:
        raise YamlLoadFailed(
            YamlProblem("yaml-syntax", f"not valid YAML: {exc}", "fix the YAML syntax")
        ) from exc
    return YamlDocument(data=data, source_map=source_map, problems=problems)


def _check_shape(text: str, limits: LoadLimits) -> None:
    """Stream the parser's events and refuse deep nesting, alias bombs and extra documents."""
    depth = 0
    expanded = 0  # values so far with every alias expanded
    added = 0  # of which the aliases added (an alias itself counts as one written value)
    documents = 0
    anchor_sizes: dict[str, int] = {}
    open_nodes: list[tuple[str | None, int]] = []  # (anchor, expanded count at start)
    open_anchors: set[str] = set()
    for event in _events(text):
        if isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise YamlLoadFailed(
                    YamlProblem(
                        "multiple-documents",
                        "the file holds more than one YAML document (a second `---`)",
                        "put one graph in each file",
                        line=_line(event.start_mark),
                    )
                )
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor in open_anchors:
                raise YamlLoadFailed(
                    YamlProblem(
                        "recursive-alias",
                        f"alias *{event.anchor} refers to a value that contains it",
                        "a graph file cannot be recursive; copy the value instead",
                        line=_line(event.start_mark),
                        column=_column(event.start_mark),
                    )
                )
            size = anchor_sizes.get(event.anchor or "", 1)  # an alias always names one
            expanded += size
            added += size - 1
        elif isinstance(event, yaml.ScalarEvent):
            expanded += 1
            if event.anchor is not None:
                anchor_sizes[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            expanded += 1
            depth += 1
            if depth > limits.max_depth:
                raise YamlLoadFailed(_too_deep(limits, event.start_mark))
            open_nodes.append((event.anchor, expanded))
            if event.anchor is not None:
                open_anchors.add(event.anchor)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
            anchor, started_at = open_nodes.pop()
            if anchor is not None:
                anchor_sizes[anchor] = expanded - started_at + 1
                open_anchors.discard(anchor)
        else:
            continue
        if added > limits.max_nodes:
            raise YamlLoadFailed(
                YamlProblem(
                    "too-large-expanded",
                    f"its aliases expand to over {limits.max_nodes:,} more values than are "
                    "written (an alias bomb?)",
                    "use aliases (*name) sparingly; a graph file needs far fewer values",
                    line=_line(event.start_mark),
                )
            )


def _events(text: str) -> Iterator[yaml.Event]:
    loader = _Loader(text)
    try:
        while loader.check_event():
            yield loader.get_event()
    finally:
        loader.dispose()


def _nesting_refused(exc: yaml.MarkedYAMLError, limits: LoadLimits) -> YamlProblem | None:
    """PyYAML's own depth limit, as `too-deep`; None for any other YAML error.

    From 6.0.4 the parser refuses more than 1,000 nested levels itself ("exceeded maximum
    nesting depth"). Its scanner reads ahead of the events `_check_shape` counts, so on a
    flow collection (`[[[[...`) this error can come first; it is the same problem.
    """
    if "maximum nesting depth" not in (exc.problem or ""):
        return None
    return _too_deep(limits, exc.problem_mark or exc.context_mark)


class _Mark(Protocol):
    """Where an event is in the file (PyYAML's pure-Python and libyaml marks alike)."""

    line: int
    column: int


def _line(mark: _Mark | None) -> int | None:
    """The 1-based line of `mark` (the parser sets one on every event; the stubs allow None)."""
    return mark.line + 1 if mark is not None else None


def _column(mark: _Mark | None) -> int | None:
    return mark.column + 1 if mark is not None else None


def _too_deep(limits: LoadLimits, mark: _Mark | None) -> YamlProblem:
    return YamlProblem(
        "too-deep",
        f"the document nests deeper than {limits.max_depth} levels",
        "a graph file needs a handful of levels; flatten the structure",
        line=_line(mark),
        column=_column(mark),
    )


def _tab_at(text: str, mark: _Mark | None) -> bool:
    """Whether the parser stopped at a tab (libyaml's message does not show the character)."""
    if mark is None:
        return False
    lines = text.splitlines()
    line = lines[mark.line] if mark.line < len(lines) else ""
    return line[mark.column : mark.column + 1] == "\t"


def _from_marked_error(exc: yaml.MarkedYAMLError, text: str = "") -> YamlProblem:
    mark = exc.problem_mark or exc.context_mark
    context = exc.context
    opened = exc.context_mark
    if context and opened is not None and (mark is None or opened.line != mark.line):
        # The parser notices an unclosed bracket on a later line; say where it was opened.
        context = f"{context} (opened on line {opened.line + 1})"
    what = ", ".join(part for part in (context, exc.problem) if part)
    unreadable_value = (exc.problem or "").startswith("cannot read ")
    hint = "check indentation, colons and quotes around this line"
    if unreadable_value:
        hint = "quote the value if it is meant as text"
    elif _tab_at(text, mark):
        hint = "a tab here: YAML indents with spaces only; replace the tab with spaces"
    return YamlProblem(
        "yaml-syntax",
        f"not valid YAML: {what}" if what else "not valid YAML",
        hint,
        line=mark.line + 1 if mark else None,
        column=mark.column + 1 if mark else None,
    )


def yaml_literal(value: Any) -> str:
    """A value as it would be written in YAML (`null`, `true`, `2024-01-01`), for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict | list):
        try:
            return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
        except yaml.YAMLError:
            return repr(value)
    return repr(value)


def _map_positions(
    node: yaml.Node,
    path: Path_,
    source_map: SourceMap,
    problems: list[YamlProblem],
    visited: set[int],
    keys: SafeConstructor,
) -> None:
    mark = node.start_mark
    source_map.positions.setdefault(path, (mark.line + 1, mark.column + 1))
    if isinstance(node, yaml.CollectionNode):
        if id(node) in visited:  # an alias: its contents were mapped where the anchor stands
            return
        visited.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[object, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue  # complex keys are refused later by the schema
            # Keys as the loader will construct them: `1:` is the int 1, `null:` is None.
            key = keys.construct_object(key_node) if key_node.value != "<<" else "<<"
            try:
                hash(key)
            except TypeError as exc:  # `!!set x: 1`: a scalar tagged as a collection
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found an unhashable key ({type(key).__name__})",
                    key_node.start_mark,
                ) from exc
            line = key_node.start_mark.line + 1
            if key in seen and key != "<<":
                problems.append(
                    YamlProblem(
                        "duplicate-key",
                        f"key {yaml_literal(key)} appears twice in one mapping (first on line "
                        f"{seen[key]}); YAML keeps only the last",
                        "remove one of them",
                        line=line,
                        column=key_node.start_mark.column + 1,
                    )
                )
            seen.setdefault(key, line)
            child = (*path, key)
            source_map.positions.setdefault(child, (line, key_node.start_mark.column + 1))
            _map_positions(value_node, child, source_map, problems, visited, keys)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _map_positions(item, (*path, index), source_map, problems, visited, keys)
