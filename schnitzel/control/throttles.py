"""Throttling: the knobs operators and the controller turn while a graph runs (a source's
rate, `sample_every`, `concurrency`), each change checked against the node's limits
(`schnitzel.runtime.knobs`) and applied whole or not at all."""

from __future__ import annotations

import math
from typing import Any

from schnitzel.errors import ControlError
from schnitzel.runtime.knobs import KNOBS, knob_limits, knob_values
from schnitzel.runtime.node import Node

__all__ = ["apply_throttle", "check_throttle"]


def apply_throttle(node: Node, changes: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Check every change against the node's limits, then apply them all (or none);
    `{knob: {"before": x, "after": y}}`."""
    check_throttle(node, changes)
    before = knob_values(node)
    for name, value in changes.items():
        if name == "rate_hz":
            assert node.pacer is not None
            node.pacer.set_rate(value)
        else:
            setattr(node, name, value)
    return {name: {"before": before[name], "after": changes[name]} for name in changes}


def check_throttle(node: Node, changes: dict[str, Any]) -> None:
    """Raise ControlError, naming the knob and its limits, unless every change applies."""
    if not changes:
        raise ControlError("say what to change: rate_hz, sample_every or concurrency")
    limits = knob_limits(node)
    for name, value in changes.items():
        _check(node, limits, name, value)


def _check(node: Node, limits: dict[str, tuple[float, float]], name: str, value: Any) -> None:
    if name not in KNOBS:
        raise ControlError(f"no throttle named {name!r}; throttles: {', '.join(KNOBS)}")
    if name not in limits:
        raise ControlError(f"node {node.id!r}: {_why_not(node, name)}")
    low, high = limits[name]
    declared = getattr(node.resolved.spec.limits, name) is not None
    if value is None:
        if name == "rate_hz" and not declared:
            return
        raise ControlError(
            f"node {node.id!r}: give {name} a value within its limits [{low:.12g}, {high:.12g}]"
        )
    if name == "rate_hz":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        ok = ok and math.isfinite(value)
    else:
        ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok:
        kind = "a number of packets per second" if name == "rate_hz" else "a whole number"
        raise ControlError(f"node {node.id!r}: {name} must be {kind}, not {value!r}")
    if not low <= value <= high:
        where = "its declared limits" if declared else "the allowed range"
        raise ControlError(
            f"node {node.id!r}: {name} {value:.12g} is outside {where} [{low:.12g}, {high:.12g}]"
            + (
                "; give a value within them, or widen the node's `limits:` in the graph file "
                "(a restart applies it)"
                if declared
                else "; declare `limits:` on the node to widen or narrow it"
            )
        )


def _why_not(node: Node, name: str) -> str:
    if node.kind == "delay":
        return "a delay node has no throttles: it keeps its loop going"
    if node.kind == "source":
        if name == "rate_hz":
            return "this source does not let the runtime pace it"
        return "a source is throttled by rate_hz only"
    if name == "rate_hz":
        return "rate_hz paces sources only; throttle the source feeding this node"
    return (
        f"plugin {node.resolved.spec.plugin!r} runs one call at a time on the event loop "
        "(neither blocking nor async), so concurrency has no effect on it"
    )
