"""Source checkpoints never run ahead of what is safe downstream (the jsonl source resumes)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from pathlib import Path

import pytest

from schnitzel.runtime import Runtime, checkpoints
from tests.runtime import plugins
from tests.runtime.harness import assert_counts_add_up, graph_from, run


def write_lines(path: Path, count: int, start: int = 0) -> None:
    with path.open("a") as file:
        for n in range(start, start + count):
            file.write(json.dumps({"n": n}) + "\n")


def checkpoint(tmp_path: Path) -> dict[str, object] | None:
    found = list((tmp_path / "state" / "checkpoints").glob("src-*.json"))
    return json.loads(found[0].read_text()) if found else None


def numbers(node_id: str = "out") -> list[int]:
    return [p.payload["n"] for p in plugins.RECORDS[node_id]]


def jsonl_graph(sink: str, inbox: str = "{}", middle: bool = True) -> str:
    hop = "  - {id: mid, kind: transform, plugin: passthrough}\n" if middle else ""
    edges = (
        "  - {from: src, to: mid}\n  - {from: mid, to: out}\n"
        if middle
        else ("  - {from: src, to: out}\n")
    )
    return f"""
nodes:
  - {{id: src, kind: source, plugin: jsonl, config: {{path: in.jsonl}}}}
{hop}  - {{id: out, kind: sink, plugin: "tests.runtime.plugins:{sink}", inbox: {inbox}}}
edges:
{edges}"""


def test_a_finished_run_checkpoints_the_end_and_the_next_reads_only_new_lines(
    tmp_path: Path,
) -> None:
    write_lines(tmp_path / "in.jsonl", 500)
    g = graph_from(tmp_path, jsonl_graph("Recorder"))
    assert run(g, tmp_path)["totals"]["delivered"] == 500
    saved = checkpoint(tmp_path)
    assert saved is not None and saved["line"] == 500

    write_lines(tmp_path / "in.jsonl", 20, start=500)
    plugins.reset()
    report = run(g, tmp_path)
    assert numbers() == list(range(500, 520))
    assert [p.seq for p in plugins.RECORDS["out"]] == list(range(500, 520))  # line numbers
    assert_counts_add_up(report, g)


def test_a_renamed_node_reads_its_file_again_and_says_whose_checkpoint_it_could_take(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Its checkpoint is named after the node id: renamed in the graph, the node found none
    and read the whole file again, which nothing said."""
    write_lines(tmp_path / "in.jsonl", 50)
    assert run(graph_from(tmp_path, jsonl_graph("Recorder")), tmp_path)["totals"]["delivered"]
    (old,) = (tmp_path / "state" / "checkpoints").glob("src-*.json")
    renamed = (
        jsonl_graph("Recorder")
        .replace("id: src,", "id: reader,")
        .replace("from: src", "from: reader")
    )
    plugins.reset()
    caplog.set_level("WARNING", logger="schnitzel.runtime")
    run(graph_from(tmp_path, renamed), tmp_path)
    assert numbers() == list(range(50))  # from the first line: duplicates, none lost
    said = [r.getMessage() for r in caplog.records if "no checkpoint of node" in r.getMessage()]
    assert len(said) == 1 and repr(old.name) in said[0], said
    assert repr(old.name.replace("src-", "reader-")) in said[0]  # what to rename it to

    plugins.reset()
    caplog.clear()
    write_lines(tmp_path / "in.jsonl", 5, start=50)
    run(graph_from(tmp_path, renamed), tmp_path)  # it has its own checkpoint now: no warning
    assert numbers() == list(range(50, 55))
    assert not [r for r in caplog.records if "no checkpoint of node" in r.getMessage()]


def test_packets_only_in_memory_when_the_run_gives_up_are_read_again(tmp_path: Path) -> None:
    """The sink never delivers; the drain times out and the in-memory packets are lost. The
    checkpoint must not have moved past them, so the next run reads them again."""
    write_lines(tmp_path / "in.jsonl", 300)
    g = graph_from(tmp_path, jsonl_graph("Backend", "{max: 16}"))
    plugins.DOWN.add("out")
    first = run(g, tmp_path, duration_s=0.5, drain_timeout_s=0.5)
    assert first["totals"]["delivered"] == 0
    saved = checkpoint(tmp_path)
    assert saved is None or saved["line"] == 0

    plugins.DOWN.clear()
    run(g, tmp_path)
    assert numbers() == list(range(300))


@pytest.mark.slow
def test_the_checkpoint_follows_delivery_through_in_memory_nodes(tmp_path: Path) -> None:
    """A slow sink behind an in-memory inbox: while the run goes on, the checkpoint never
    names a line the sink has not finished."""
    write_lines(tmp_path / "in.jsonl", 2000)
    body = jsonl_graph("Recorder", "{max: 8}").replace(
        '"tests.runtime.plugins:Recorder",',
        '"tests.runtime.plugins:Recorder", config: {delay_s: 0.002},',
    )
    g = graph_from(tmp_path, body)
    seen: list[tuple[int, int]] = []

    runtime = Runtime(g, state_dir=tmp_path / "state")

    async def watch() -> None:
        # Watch until two checkpoints past line 0 were seen mid-run (however long a busy
        # machine takes to get there), then stop.
        task = asyncio.create_task(runtime.run())
        started = time.monotonic()
        while not task.done() and sum(line > 0 for line, _ in seen) < 2:
            assert time.monotonic() - started < 60, "hang guard"
            await asyncio.sleep(0.05)
            saved = checkpoint(tmp_path)
            if saved is not None:
                seen.append((int(saved["line"]), len(plugins.RECORDS["out"])))
        runtime.request_stop("signal")
        await asyncio.wait_for(task, 60)

    asyncio.run(watch())
    assert seen, "no checkpoint was written while the run went on"
    for line, delivered_then in seen:
        assert line <= delivered_then  # the records were read after the checkpoint
    assert seen[-1][0] > 0


def test_a_durable_inbox_lets_the_checkpoint_pass_what_it_committed(tmp_path: Path) -> None:
    write_lines(tmp_path / "in.jsonl", 400)
    inbox = "{durable: {path: state/out.db}}"
    g = graph_from(tmp_path, jsonl_graph("Backend", inbox))
    plugins.DOWN.add("out")
    first = run(g, tmp_path, max_packets=400, drain_timeout_s=10)  # every line read, then stop
    assert first["totals"]["delivered"] == 0
    assert first["nodes"]["out"]["durable"]["backlog"] == 400
    saved = checkpoint(tmp_path)
    assert saved is not None and saved["line"] == 400  # every line is on disk

    plugins.DOWN.clear()
    second = run(g, tmp_path)
    assert numbers() == list(range(400))  # from the store; the source read nothing again
    assert second["nodes"]["src"]["out"] == 0


def test_a_commit_to_a_durable_inbox_lets_the_source_checkpoint_without_waiting_for_a_tick(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With the periodic poll an hour away, only the put's return can wake the tracker for a
    # source with `checkpoints_promptly`: it waits (60 s at most) for its checkpoint first.
    monkeypatch.setattr(checkpoints, "CHECKPOINT_INTERVAL_S", 3600.0)
    g = graph_from(
        tmp_path,
        """
nodes:
  - {id: src, kind: source, plugin: "tests.runtime.plugins:WaitsForCheckpoint",
     config: {count: 5}}
  - {id: out, kind: sink, plugin: "null", inbox: {durable: {path: state/out.db}}}
edges:
  - {from: src, to: out}
""",
    )
    report = run(g, tmp_path)
    assert plugins.SAVED["src"] == [4]  # reached while the source still waited for it
    assert report["totals"]["delivered"] == 5


def test_a_replaced_input_file_is_read_from_the_start(tmp_path: Path) -> None:
    write_lines(tmp_path / "in.jsonl", 50)
    g = graph_from(tmp_path, jsonl_graph("Recorder", middle=False))
    run(g, tmp_path)
    (tmp_path / "in.jsonl").unlink()
    write_lines(tmp_path / "in.jsonl", 80, start=1000)
    plugins.reset()
    run(g, tmp_path)
    assert numbers() == list(range(1000, 1080))


def test_a_damaged_checkpoint_is_moved_aside_and_the_file_read_again(tmp_path: Path) -> None:
    write_lines(tmp_path / "in.jsonl", 30)
    g = graph_from(tmp_path, jsonl_graph("Recorder", middle=False))
    run(g, tmp_path)
    found = next((tmp_path / "state" / "checkpoints").glob("src-*.json"))
    found.write_text("{not json")
    plugins.reset()
    run(g, tmp_path)
    assert numbers() == list(range(30))  # duplicates, never loss
    assert list(found.parent.glob("src-*.json.corrupt-*"))


def test_the_last_checkpoint_is_saved_even_when_a_save_is_still_running_at_the_end(
    tmp_path: Path,
) -> None:
    """The end of the run asks for the last packet while an earlier save is still running:
    the run waits for that one and then the last, so the next run does not read again."""
    g = graph_from(
        tmp_path,
        """
nodes:
  - {id: src, kind: source, plugin: "tests.runtime.plugins:SlowCheckpoints",
     config: {count: 2000}}
  - {id: out, kind: sink, plugin: "tests.runtime.plugins:Recorder"}
edges:
  - {from: src, to: out}
""",
    )
    run(g, tmp_path)
    assert len(plugins.SAVED["src"]) >= 2  # a save was running when the last was asked for
    assert plugins.SAVED["src"][-1] == 1999


def test_a_checkpoint_of_the_older_format_is_resumed_from_when_the_file_still_fits(
    tmp_path: Path,
) -> None:
    """A checkpoint written before files were identified by their first line (version 1:
    inode and a hash of the 64 bytes before the offset) still resumes an upgraded run."""
    path = tmp_path / "in.jsonl"
    write_lines(path, 50)
    data = path.read_bytes()
    offset = len(b"".join(data.splitlines(keepends=True)[:20]))
    g = graph_from(tmp_path, jsonl_graph("Recorder", middle=False))
    run(g, tmp_path, max_packets=1)  # creates the checkpoint file where the source looks
    saved = next((tmp_path / "state" / "checkpoints").glob("src-*.json"))
    saved.write_text(
        json.dumps(
            {
                "version": 1,
                "path": str(path),
                "offset": offset,
                "line": 20,
                "inode": path.stat().st_ino,
                "tail_sha256": hashlib.sha256(data[offset - 64 : offset]).hexdigest(),
            }
        )
    )
    plugins.reset()
    run(g, tmp_path)
    assert numbers() == list(range(20, 50))
    assert checkpoint(tmp_path)["version"] == 2  # type: ignore[index]
