"""Field types for plugin config models, so each plugin need not write its own checks."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, Field

__all__ = ["PACKET_KIND_PATTERN", "JsonObject", "JsonValue", "PacketKind", "require_json"]


def require_json(value: Any) -> Any:
    """Refuse values that are not plain JSON.

    YAML reads `2026-01-01` as a date and `.nan` as a float NaN; neither survives a portable
    boundary, so a config that will become packet payloads must not hold them.
    """
    problem = _not_json(value, "")
    if problem is not None:
        raise ValueError(
            f"must be plain JSON (strings, finite numbers, booleans, null, lists, maps with "
            f"string keys); {problem}"
        )
    return value


def _not_json(value: Any, where: str) -> str | None:
    """What makes `value` not plain JSON, or None. Stricter than `json.dumps`, which would
    silently turn `{1: x}` into `{"1": x}` and a tuple into a list."""
    if value is None or isinstance(value, str | bool | int):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{where or 'the value'} is {value}"
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _not_json(item, f"{where}[{index}]")
            if found:
                return found
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"key {key!r} in {where or 'the map'} is not a string; quote it"
            found = _not_json(item, f"{where}.{key}" if where else key)
            if found:
                return found
        return None
    kind = type(value).__name__
    return f"{where or 'the value'} is a {kind}" + (" (quote dates)" if "date" in kind else "")


JsonValue = Annotated[Any, AfterValidator(require_json)]
"""Any plain JSON value."""

JsonObject = Annotated[dict[str, Any], AfterValidator(require_json)]
"""A JSON object (a mapping with string keys and JSON values)."""

PACKET_KIND_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"

PacketKind = Annotated[str, Field(pattern=PACKET_KIND_PATTERN)]
"""A packet kind as an option (`sensor`, `frame`, ...): lowercase, digits and underscores."""
