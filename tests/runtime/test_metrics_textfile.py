"""`--metrics-textfile PATH`: the metrics node_exporter's textfile collector reads, written
atomically while the run lasts and once more at its end, parsed with prometheus-client's own
parser; a path that cannot be written stops the run before it starts."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from tests.runtime.harness import HEADER
from tests.runtime.test_prometheus_metrics import HANG_GUARD_S, samples, schnitzel

ENDLESS = """
nodes:
  - {id: src, kind: source, plugin: synthetic, config: {rate_hz: 200}}
  - {id: out, kind: sink, plugin: "null"}
edges:
  - {from: src, to: out}
"""
SENT = "schnitzel_component_sent_packets_total"
AT_OUT = frozenset(
    {"component_id": "out", "component_kind": "sink", "component_type": "null"}.items()
)


def sent_by_out(path: Path) -> float:
    return samples(path.read_text())[(SENT, AT_OUT)]


def test_the_textfile_is_rewritten_while_the_run_lasts_and_ends_with_the_reports_figures(
    tmp_path: Path,
) -> None:
    graph = tmp_path / "graph.yaml"
    graph.write_text(HEADER + ENDLESS)
    textfile = tmp_path / "metrics" / "schnitzel.prom"
    textfile.parent.mkdir()
    report = tmp_path / "report.json"
    process = schnitzel(
        "run", str(graph), "--metrics-textfile", str(textfile), "--metrics-textfile-interval",
        "0.1", "--no-control-socket", "--report-json", str(report),
        "--state-dir", str(tmp_path / "state"), cwd=tmp_path,
    )  # fmt: skip
    seen: list[float] = []
    started = time.monotonic()
    try:
        while len(set(seen)) < 3:  # three different figures: it is rewritten as the run goes
            assert process.poll() is None, process.communicate()[1].decode()[-2000:]
            assert time.monotonic() - started < HANG_GUARD_S, f"textfile never moved: {seen}"
            if textfile.exists():  # never half a file: every read parses
                seen.append(sent_by_out(textfile))
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=HANG_GUARD_S)
    assert process.returncode == 0
    assert seen == sorted(seen)
    delivered = json.loads(report.read_text())["nodes"]["out"]["out"]
    assert sent_by_out(textfile) == delivered  # the last write has the run's final figures
    assert [p.name for p in textfile.parent.iterdir()] == ["schnitzel.prom"]  # no temp left


def test_a_textfile_that_cannot_be_written_is_refused_before_anything_runs(
    tmp_path: Path,
) -> None:
    graph = tmp_path / "graph.yaml"
    graph.write_text(HEADER + ENDLESS)
    for path, words in (
        (tmp_path / "missing" / "schnitzel.prom", "cannot write metrics"),
        (tmp_path / "schnitzel.txt", "ending in .prom"),
    ):
        process = schnitzel(
            "run", str(graph), "--metrics-textfile", str(path), "--no-control-socket",
            "--state-dir", str(tmp_path / "state"), cwd=tmp_path,
        )  # fmt: skip
        _out, err = process.communicate(timeout=HANG_GUARD_S)
        assert process.returncode == 2, err.decode()
        assert words in err.decode() and "nothing was run" in err.decode()
