"""A node's live knobs: a source's rate, the share of packets a node keeps (`sample_every`)
and a node's calls at once (`concurrency`), their bounds (the node's declared `limits`, or
what the runtime allows) and their values now. Changing them is the control plane's
(`schnitzel.control.throttles`); the run report reads them here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schnitzel.runtime.node import MAX_CONCURRENCY, Node
from schnitzel.spec.model import LimitsSpec

__all__ = [
    "KNOBS",
    "knob_bounds",
    "knob_limits",
    "knob_values",
    "limits_report",
    "plain_value",
]

KNOBS = ("rate_hz", "sample_every", "concurrency")
MAX_RATE_HZ = 1_000_000.0
MAX_SAMPLE_EVERY = 1_000_000
_DEFAULTS: dict[str, tuple[float, float]] = {
    "rate_hz": (0.001, MAX_RATE_HZ),
    "sample_every": (1, MAX_SAMPLE_EVERY),
    "concurrency": (1, MAX_CONCURRENCY),
}


def knob_limits(node: Node) -> dict[str, tuple[float, float]]:
    """The knobs that apply to `node`, each with its [lowest, highest] (worked out once per
    plugin the node runs)."""
    if node.knob_bounds is None:
        node.knob_bounds = _knob_limits(node)
    return node.knob_bounds


def limits_report(node: Node) -> tuple[dict[str, list[float]], dict[str, list[float] | None]]:
    """The report's `limits` and `declared_limits` of `node`: the same two objects for every
    snapshot until the plugin changes (a snapshot of every node, several times a second,
    should not allocate what does not change). Read them; do not change them."""
    if node.limits_shown is None:
        declared = node.resolved.spec.limits
        bounds = knob_limits(node)
        node.limits_shown = (
            {name: list(low_high) for name, low_high in bounds.items()},
            {name: list(value) if (value := getattr(declared, name)) else None for name in bounds},
        )
    return node.limits_shown


def _knob_limits(node: Node) -> dict[str, tuple[float, float]]:
    declared = node.resolved.spec.limits
    if node.kind == "source":
        names = ["rate_hz"] if node.pacer is not None else []
    elif node.kind == "delay":
        names = []
    else:
        names = ["sample_every", *(["concurrency"] if node.concurrent else [])]
    bounds = {name: knob_bounds(declared, name) for name in names}
    cap = type(node.plugin).max_calls_at_once
    if "concurrency" in bounds and cap is not None:
        low, high = bounds["concurrency"]
        bounds["concurrency"] = (min(low, cap), min(high, cap))
    return bounds


def knob_bounds(declared: LimitsSpec, name: str) -> tuple[float, float]:
    """A knob's [lowest, highest]: as the graph declares it, else the runtime's range."""
    bounds = getattr(declared, name)
    return tuple(bounds) if bounds is not None else _DEFAULTS[name]


def plain_value(value: Any) -> str:
    """A value for people, the one vocabulary of events, `ctl` and the console: `none` for
    None (as fast as accepted), `true`/`false`, `12.5`, `3` (a whole float as an integer),
    text as it is, `{force: false}` and `[1, 2]` for mappings and lists."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {plain_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(plain_value(v) for v in value) + "]"
    return str(value)


def knob_values(node: Node) -> dict[str, Any]:
    """The current value of each knob of `knob_limits(node)`."""
    values: dict[str, Any] = {}
    for name in knob_limits(node):
        if name == "rate_hz":
            assert node.pacer is not None
            values[name] = node.pacer.rate_hz
        else:
            values[name] = getattr(node, name)
    return values
