"""State handed over on a hot swap between the processing policies.

A swap hands state over whenever the old plugin exports and the new one imports
(docs/plugins.md, "Hot swap"), so a `threshold` may be handed what `dedup` exported. Each
policy tags what it exports with its name and takes only its own; anything else is ignored
(the new policy starts empty and says so) rather than refused, so a swap between different
policies, the operator's ordinary move, is never refused for it.
"""

from __future__ import annotations

from typing import Any

from schnitzel import NodeContext

__all__ = ["own_state", "tagged"]

_TAG = "schnitzel_processing_state"


def tagged(plugin: str, state: dict[str, Any]) -> dict[str, Any]:
    """`state` marked as exported by `plugin`."""
    return {_TAG: plugin, **state}


def own_state(plugin: str, state: Any, context: NodeContext) -> dict[str, Any] | None:
    """The state if `plugin` exported it, else None (with an info event naming what came)."""
    if isinstance(state, dict) and state.get(_TAG) == plugin:
        return state
    context.event(
        "info", f"{plugin}: starts with empty state (the replaced plugin's is not its own)"
    )
    return None
