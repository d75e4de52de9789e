"""Two graphs run by one user with one state dir: each serves its own default socket, and
`schnitzel ctl` without `--socket` picks the only live one, or lists them and asks. Plus what
ctl says about a node that does not exist and a swap of the config alone, and what
`schnitzel-tui --attach` alone says when nothing runs."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from schnitzel.control.paths import default_socket_path
from tests.conftest import REPO, SCHNITZEL, SCHNITZEL_TUI, run_cli
from tests.control.harness import socket_dir
from tests.control.test_ctl_end_to_end import (
    GRAPH,
    ctl,
    start_run,
    stop,
    until_answering,
)
from tests.runtime.harness import graph_from


@pytest.fixture
def short_dir() -> Iterator[Path]:
    with socket_dir() as directory:
        yield directory


SAMPLED = GRAPH.replace("plugin: passthrough}", "plugin: sample, config: {every: 2}}")


def ctl_in(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`schnitzel ctl --state-dir STATE ...`, without --socket."""
    return subprocess.run(
        [*SCHNITZEL, "ctl", "--state-dir", str(state), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_two_graphs_each_get_a_socket_and_ctl_asks_which_one(
    tmp_path: Path, short_dir: Path
) -> None:
    state = short_dir / "state"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    graph_a = graph_from(tmp_path / "a", GRAPH).path
    graph_b = graph_from(tmp_path / "b", GRAPH).path
    assert graph_a is not None and graph_b is not None
    first = start_run(tmp_path / "a", "--state-dir", str(state))
    second = start_run(tmp_path / "b", "--state-dir", str(state))
    sock_a, sock_b = default_socket_path(state, graph_a), default_socket_path(state, graph_b)
    try:
        until_answering(sock_a, first)
        until_answering(sock_b, second)
        assert sock_a != sock_b and sock_a.parent == sock_b.parent == state / "control"

        several = ctl_in(state, "status")
        assert several.returncode == 2
        assert "2 runtimes answer" in several.stderr
        assert f"graph {graph_a}" in several.stderr and f"graph {graph_b}" in several.stderr
        assert "--socket PATH" in several.stderr and "--graph GRAPH" in several.stderr

        by_graph = ctl_in(state, "--graph", str(graph_b), "hello", "--json")
        assert by_graph.returncode == 0, by_graph.stderr
        assert json.loads(by_graph.stdout)["pid"] == second.pid

        # The same graph again with the same state dir: its socket is taken, it runs unsteered.
        again = start_run(tmp_path / "a", "--state-dir", str(state), "--max-packets", "20")
        _, again_stderr = again.communicate(timeout=60)
        assert again.returncode == 0, again_stderr
        assert "no control socket for this run" in again_stderr
    finally:
        stop(second)
    try:
        only = ctl_in(state, "hello", "--json")  # one left: chosen without asking
        assert only.returncode == 0, only.stderr
        assert json.loads(only.stdout)["pid"] == first.pid
    finally:
        stop(first)
    assert not sock_a.exists() and not sock_b.exists()
    none = ctl_in(state, "status")
    assert none.returncode == 3
    assert f"no runtime serves a control socket for the state dir {state}" in none.stderr


def test_ctl_offers_the_closest_node_and_escapes_look_alikes(
    tmp_path: Path, short_dir: Path
) -> None:
    graph_from(tmp_path, GRAPH)
    sock = short_dir / "run.sock"
    process = start_run(tmp_path, "--state-dir", str(tmp_path / "state"), "--control-socket",
                        str(sock))  # fmt: skip
    try:
        until_answering(sock, process)
        typo = ctl(sock, "throttle", "srcc", "--rate-hz", "5")
        assert typo.returncode == 1
        assert "no node 'srcc' in this graph; did you mean 'src'? nodes: mid, out, src" in (
            typo.stderr
        )
        cyrillic = ctl(sock, "pause", "\u0441rc")  # a Cyrillic es, not a Latin c
        assert cyrillic.returncode == 1
        assert "no node '\\u0441rc' in this graph; did you mean 'src'?" in cyrillic.stderr
    finally:
        stop(process)


def test_swap_with_a_config_file_alone_keeps_the_plugin(tmp_path: Path, short_dir: Path) -> None:
    graph_from(tmp_path, SAMPLED)
    sock = short_dir / "run.sock"
    config = tmp_path / "every3.yaml"
    config.write_text("every: 3\n")
    process = start_run(tmp_path, "--state-dir", str(tmp_path / "state"), "--control-socket",
                        str(sock))  # fmt: skip
    try:
        until_answering(sock, process)
        dry = ctl(sock, "swap", "mid", "--config-file", str(config), "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert "dry run: mid would change its config (plugin sample kept); nothing" in dry.stdout
        done = ctl(sock, "swap", "mid", "--config-file", str(config), "--why", "thinner")
        assert done.returncode == 0, done.stderr
        assert "mid: config changed, plugin sample kept (generation 1;" in done.stdout
        assert "sample -> sample" not in done.stdout
        assert "every" in done.stdout  # the diff
        nodes = json.loads(ctl(sock, "describe", "--json").stdout)["nodes"]
        mid = next(n for n in nodes if n["id"] == "mid")
        assert mid["plugin"] == "sample" and mid["config"]["every"] == 3
        neither = ctl(sock, "swap", "mid")
        assert neither.returncode == 2 and "give --plugin P, --config-file F" in neither.stderr
    finally:
        stop(process)


def test_attach_alone_with_nothing_running_names_the_consoles_own_option(tmp_path: Path) -> None:
    # The hint once named ctl's `--socket PATH`, which schnitzel-tui does not take.
    state = tmp_path / "state"
    none = run_cli("--attach", "--state-dir", str(state), cmd=SCHNITZEL_TUI)
    assert none.returncode == 3
    assert none.stderr == (
        f"schnitzel-tui: no runtime serves a control socket for the state dir {state}; is it "
        "running? (start it with `schnitzel run GRAPH`; a run started with --state-dir DIR is "
        "found with the same --state-dir, one with --control-socket PATH with --attach SOCKET)\n"
    )
