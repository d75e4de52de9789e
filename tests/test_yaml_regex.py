"""PyYAML imported without compiling `Reader.NON_PRINTABLE` (schnitzel/spec/yaml_regex.py):
deferred in a fresh interpreter, and the pure-Python reader checks characters as before."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import yaml

from schnitzel.spec.yaml_regex import NON_PRINTABLE, LazyPattern
from tests.conftest import REPO

PROBE = """
import json, re, sys
import schnitzel.spec.yaml_source
import yaml.reader
pattern = yaml.reader.Reader.NON_PRINTABLE
deferred = not isinstance(pattern, re.Pattern) and not pattern.compiled
left_in_cache = any(value is pattern for value in re._cache.values())
try:
    yaml.safe_load("a: \\x07")  # the pure-Python loader, which uses the pattern
    refused = None
except yaml.reader.ReaderError as exc:
    refused = str(exc)
print(json.dumps({"deferred": deferred, "left_in_cache": left_in_cache, "refused": refused}))
"""


def test_the_reader_pattern_is_compiled_only_when_the_pure_python_reader_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, check=True
    )
    result = json.loads(done.stdout.splitlines()[-1])
    # a PyYAML whose pattern differs from NON_PRINTABLE would compile it at import again
    assert result["deferred"], "yaml.reader's pattern changed: update yaml_regex.NON_PRINTABLE"
    assert not result["left_in_cache"]
    assert result["refused"] == (
        "unacceptable character #x0007: special characters are not allowed\n"
        '  in "<unicode string>", position 3'
    )


def test_the_stand_in_matches_as_pyyaml_s_own_pattern() -> None:
    real = re.compile(NON_PRINTABLE)
    lazy = LazyPattern(NON_PRINTABLE)
    assert not lazy.compiled
    samples = ["plain text", "tab\there", "bell\x07", "del\x7f", "nel\x85", "\ud800", "\ufffe"]
    for text in [*samples, "emoji \U0001f600", "\x00", "\u00a0nbsp"]:
        found, expected = lazy.search(text), real.search(text)
        assert (found and found.group()) == (expected and expected.group()), repr(text)
    assert lazy.compiled
    assert lazy.pattern == real.pattern


@pytest.mark.skipif(not hasattr(yaml, "CSafeLoader"), reason="libyaml not installed")
def test_libyaml_refuses_control_characters_without_the_pattern() -> None:
    with pytest.raises(yaml.reader.ReaderError, match="control characters are not allowed"):
        yaml.load("a: \x07", Loader=yaml.CSafeLoader)
