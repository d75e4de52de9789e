"""Field types for plugin config models, so each plugin need not write its own checks."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import AfterValidator

__all__ = ["JsonObject", "JsonValue", "require_json"]


def require_json(value: Any) -> Any:
    """Refuse values that are not plain JSON.

    YAML reads `2026-01-01` as a date and `.nan` as a float NaN; neither survives a portable
    boundary, so a config that will become packet payloads must not hold them.
    """
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"must be plain JSON (strings, finite numbers, booleans, null, lists, maps with "
            f"string keys); quote dates and leave out NaN: {exc}"
        ) from exc
    return value


JsonValue = Annotated[Any, AfterValidator(require_json)]
"""Any plain JSON value."""

JsonObject = Annotated[dict[str, Any], AfterValidator(require_json)]
"""A JSON object (a mapping with string keys and JSON values)."""
