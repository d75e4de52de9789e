"""Masking secrets in configs before they are shown: what a console or `ctl` shows may be
screenshotted, and the audit log may be read by more people than the graph file."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["MASK", "is_secret_key", "masked"]

MASK = "***"
_SECRET_KEY = re.compile(r"token|secret|passw|api[-_]?key|authori|cookie|credential", re.I)
_NOT_SECRET = re.compile(r"_(env|file|path)$", re.I)
"""Keys that name where a secret is (`token_env`), not the secret."""
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]+:)[^@/\s]+@", re.I)


def masked(value: Any) -> Any:
    """JSON-ready data with values under secret-looking keys (an Authorization header, an API
    key, a cookie) and passwords in URLs replaced by `***`."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    if isinstance(value, dict):
        return {k: MASK if is_secret_key(k) else masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    if isinstance(value, str):
        return _URL_PASSWORD.sub(rf"\1{MASK}@", value)
    return value


def is_secret_key(key: object) -> bool:
    """True for a key whose value is a secret (`api_key`), not for where one is (`token_env`)."""
    return isinstance(key, str) and bool(_SECRET_KEY.search(key)) and not _NOT_SECRET.search(key)
