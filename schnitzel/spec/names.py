"""How ids and names are shown to the operator in messages.

Ids are `[a-z0-9_-]`, but what a file or a command line *gives* may be anything: a Cyrillic
es (U+0441) looks exactly like a Latin `c`. Messages show such names escaped (`'\\u0441am'`),
so the operator sees why it is not `cam`; plain ASCII names read as before.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["closest", "did_you_mean", "shown", "shown_plain", "unknown_node"]


def shown(name: object) -> str:
    """A name quoted for a message: `'cam'`, and with anything outside printable ASCII
    escaped (`'\\u0441am'`, `'a\\tb'`) so look-alikes and control characters show."""
    return ascii(name) if isinstance(name, str) else repr(name)


def shown_plain(name: str) -> str:
    """As `shown`, without the quotes: for labels already inside a sentence."""
    return ascii(name)[1:-1]


def closest(name: str, options: Iterable[str]) -> str | None:
    """The option closest to `name` (difflib's judgement), or None when none is close."""
    import difflib  # here: only a graph with a mistake needs it (CLI start-up)

    close = difflib.get_close_matches(name, list(options), n=1)
    return close[0] if close else None


def did_you_mean(name: str, options: Iterable[str]) -> str:
    """`"did you mean 'cam'? "` for the closest of `options`, or `""` when none is close."""
    close = closest(name, options)
    return f"did you mean {shown(close)}? " if close is not None else ""


def unknown_node(node_id: str, known: Iterable[str]) -> str:
    """The message for a node id that names no node: the closest id, then every id."""
    ids = sorted(known)
    return f"no node {shown(node_id)} in this graph; {did_you_mean(node_id, ids)}nodes: " + (
        ", ".join(ids) or "none"
    )
