"""A source's `packets()` gives packets, bad records and None (docs/plugins.md); anything
else is the plugin's bug. It ends the source with a message naming what came, as an exception
would: it is never handed on to the next node as if it were a packet."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runtime import plugins
from tests.runtime.harness import graph_from, run


@pytest.mark.parametrize("asynchronous", [False, True], ids=["generator", "async-generator"])
def test_a_source_that_yields_something_not_a_packet_ends_saying_what_it_gave(
    asynchronous: bool, tmp_path: Path
) -> None:
    body = (
        "nodes:\n"
        '  - {id: src, kind: source, plugin: "tests.runtime.plugins:YieldsJunk", '
        f"config: {{count: 5, junk_at: 2, asynchronous: {str(asynchronous).lower()}}}}}\n"
        "  - {id: mid, kind: transform, plugin: passthrough}\n"
        '  - {id: out, kind: sink, plugin: "tests.runtime.plugins:Recorder"}\n'
        "edges:\n  - {from: src, to: mid}\n  - {from: mid, to: out}\n"
    )
    report = run(graph_from(tmp_path, body), tmp_path)  # checks that every count adds up
    assert [p.seq for p in plugins.RECORDS["out"]] == [0, 1]  # what came before the bug
    assert report["totals"]["delivered"] == 2 and report["totals"]["emitted"] == 2
    assert report["nodes"]["mid"]["health"] != "failing"  # the next node is not hurt
    src = report["nodes"]["src"]
    assert src["errors"] == 1 and report["status"] == "degraded"
    message = src["recent_errors"][0]["message"]
    assert "gave a str" in message and "StreamPacket" in message
