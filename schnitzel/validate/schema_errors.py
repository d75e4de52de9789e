"""Turn pydantic's validation errors into problems an operator can act on."""

from __future__ import annotations

import re
import types
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from schnitzel.spec.names import closest, shown
from schnitzel.spec.yaml_source import yaml_literal

__all__ = ["describe_error", "field_names_at", "render_path"]


def render_path(path: tuple[Any, ...]) -> str:
    """`("nodes", 2, "config", "rate_hz")` as `nodes[2].config.rate_hz`."""
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            text = part if isinstance(part, str) else yaml_literal(part)
            out += f".{text}" if out else text
    return out or "(top level)"


def _unwrap(annotation: Any) -> list[Any]:
    """The concrete types inside Optional/Union/Annotated/list/dict annotations."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return [t for arg in get_args(annotation) for t in _unwrap(arg)]
    if origin is not None and hasattr(annotation, "__metadata__"):
        return _unwrap(get_args(annotation)[0])
    return [annotation]


def field_names_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed at `loc` inside `model` (aliases where set), for did-you-mean hints."""
    current: list[Any] = [model]
    for part in loc:
        following: list[Any] = []
        for candidate in current:
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                for name, info in candidate.model_fields.items():
                    if part in (name, info.alias):
                        following.extend(_unwrap(info.annotation))
            elif get_origin(candidate) in (list, tuple) and isinstance(part, int):
                following.extend(t for arg in get_args(candidate) for t in _unwrap(arg))
        current = following
    names: list[str] = []
    for candidate in current:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            names.extend(info.alias or name for name, info in candidate.model_fields.items())
    return names


_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]+:)[^@/\s]+@", re.I)
"""A password inside a URL (`rtsp://user:pw@host`): never echoed back in a problem."""


def _short(value: Any, limit: int = 60) -> str:
    text = _URL_PASSWORD.sub(r"\1***@", yaml_literal(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _name(value: Any) -> str:
    """A value that should have been a name (an id, a kind, one of a few words): escaped
    when it holds characters outside printable ASCII, so a look-alike shows."""
    if not isinstance(value, str):
        return _short(value)
    text = shown(value)
    return text if len(text) <= 60 else text[:57] + "..."


def describe_error(
    error: dict[str, Any], model: type[BaseModel], prefix: tuple[Any, ...] = ()
) -> tuple[str, str, str]:
    """(code, message, hint) for one entry of `ValidationError.errors()` raised by `model`,
    which validated the part of the file at `prefix`."""
    loc = tuple(error["loc"])
    kind = error["type"]
    key = loc[-1] if loc else None
    where = render_path(prefix + loc)
    if kind == "extra_forbidden":
        allowed = field_names_at(model, loc[:-1])
        close = closest(str(key), allowed)
        hint = f"did you mean {close!r}? " if close is not None else ""
        return (
            "unknown-key",
            f"unknown key {yaml_literal(key)} at {where}",
            f"{hint}allowed keys here: {', '.join(allowed)}" if allowed else "remove it",
        )
    if kind == "missing":
        return "missing-key", f"missing required key {key!r} at {where}", f"add `{key}:`"
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        options = [o.strip(" '") for o in expected.replace(" or ", ",").split(",")]
        close = closest(str(error.get("input")), options)
        hint = f"did you mean {close!r}? " if close is not None else ""
        return (
            "bad-value",
            f"{where} is {_name(error.get('input'))}; it must be {expected}",
            f"{hint}use one of: {', '.join(o for o in options if o)}",
        )
    msg = error["msg"].removeprefix("Value error, ")  # pydantic's prefix for ValueError
    got = error.get("input")
    got_text = _name(got) if error["type"] == "string_pattern_mismatch" else _short(got)
    return (
        "bad-value",
        f"{where}: {msg[0].lower()}{msg[1:]} (got {got_text})",
        "fix the value; `schnitzel schema` prints what each key accepts",
    )


def errors_of(exc: ValidationError) -> list[dict[str, Any]]:
    """The error entries, without the URLs pydantic adds for its own docs."""
    return [dict(error) for error in exc.errors(include_url=False)]
