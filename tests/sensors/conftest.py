"""Every sensors test starts with empty records and closed gates (tests/runtime/plugins.py):
the runtime tests' autouse fixture, served here too."""

from __future__ import annotations

from tests.runtime.conftest import _fresh_records

__all__ = ["_fresh_records"]
