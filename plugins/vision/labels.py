"""Class names of a detection model: from its metadata or from a labels file (pure)."""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from pathlib import Path

from schnitzel import SchnitzelError

__all__ = ["LabelsError", "labels_from_file", "labels_from_metadata"]


class LabelsError(SchnitzelError, ValueError):
    """A labels file or a model's `names` metadata cannot be read."""


def labels_from_metadata(metadata: Mapping[str, str]) -> list[str] | None:
    """Names from an export's `names` metadata (Ultralytics writes `{0: 'person', ...}`;
    a JSON list or object works too), or None when the model has none."""
    raw = metadata.get("names") or metadata.get("labels")
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError) as exc:
            raise LabelsError(f"the model's `names` metadata is not a list or map: {exc}") from exc
    return _as_list(value, "the model's `names` metadata")


def labels_from_file(path: Path) -> list[str]:
    """Names from a text file (one per line, blank lines and `#` comments skipped) or a JSON
    list or `{id: name}` object."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LabelsError(f"cannot read labels file {path}: {exc.strerror or exc}") from exc
    if path.suffix.lower() == ".json":
        try:
            return _as_list(json.loads(text), f"labels file {path}")
        except ValueError as exc:
            raise LabelsError(f"labels file {path} is not JSON: {exc}") from exc
    names = [line.strip() for line in text.splitlines()]
    return [n for n in names if n and not n.startswith("#")]


def _as_list(value: object, where: str) -> list[str]:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    if isinstance(value, dict):
        try:
            by_id = {int(k): str(v) for k, v in value.items()}
        except (TypeError, ValueError) as exc:
            raise LabelsError(f"{where}: class ids must be whole numbers") from exc
        if sorted(by_id) != list(range(len(by_id))):
            raise LabelsError(f"{where}: class ids must run 0..{len(by_id) - 1} without gaps")
        return [by_id[i] for i in range(len(by_id))]
    raise LabelsError(f"{where} must be a list of names or a map of id to name")
