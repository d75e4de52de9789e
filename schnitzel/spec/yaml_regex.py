"""Spare the CLI compiling a regular expression of PyYAML that libyaml never uses.

Importing `yaml` imports `yaml.reader`, whose `Reader` class compiles `NON_PRINTABLE`, a
character class spanning most of Unicode: `re` builds a 65,536-entry table for it in Python,
about 7% of a whole `schnitzel validate` (58M of its ~800M instructions, valgrind). Only the
pure-Python `Reader` ever uses the pattern; the libyaml loader (`CSafeLoader`) checks the
characters itself.

`defer_reader_regex()`, called before PyYAML's first import, leaves in `re`'s cache of compiled
patterns, under that pattern's key, a stand-in that compiles the real pattern the first time any
of its methods is used, and takes it out of the cache again once `yaml` is imported: the
pure-Python reader still checks characters exactly as before (`tests/test_yaml_regex.py`).
With a PyYAML whose pattern differs, or a `re` without that cache, the import compiles the
pattern as it always did.
"""

from __future__ import annotations

import importlib
import re
import sys
from typing import Any

__all__ = ["NON_PRINTABLE", "LazyPattern", "defer_reader_regex"]

NON_PRINTABLE = "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
"""`yaml.reader.Reader.NON_PRINTABLE`'s pattern, as PyYAML 5 and 6 write it."""


class LazyPattern:
    """A compiled pattern that is compiled when first used."""

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self._source = (pattern, flags)
        self._compiled: re.Pattern[str] | None = None

    @property
    def compiled(self) -> bool:
        """Whether the real pattern has been compiled yet."""
        return self._compiled is not None

    def __getattr__(self, name: str) -> Any:
        # search, match, pattern, ...: whatever is asked of a compiled pattern
        if self._compiled is None:
            pattern, flags = self._source
            self._compiled = re.compile(pattern, flags)
        return getattr(self._compiled, name)


def defer_reader_regex() -> None:
    """Import `yaml` with `Reader.NON_PRINTABLE` compiled on first use. Does nothing once
    `yaml` is imported."""
    if "yaml" in sys.modules:
        return
    cache = getattr(re, "_cache", None)
    key = (str, NON_PRINTABLE, 0)
    if not isinstance(cache, dict) or key in cache:
        importlib.import_module("yaml")
        return
    stand_in = LazyPattern(NON_PRINTABLE)
    cache[key] = stand_in
    try:
        importlib.import_module("yaml")
    finally:
        for name in ("_cache", "_cache2"):  # 3.12 keeps a second cache of recent patterns
            other = getattr(re, name, None)
            if isinstance(other, dict) and other.get(key) is stand_in:
                del other[key]
