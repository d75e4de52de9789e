"""The control socket served by a real runtime: commands, who is recorded, file mode, stale
and live sockets, limits on connections, slow commands, and bugs kept from the client."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from schnitzel import RuntimeControl
from schnitzel.control.client import (
    AsyncControlClient,
    ControlClient,
    ControlDisconnected,
    ControlUnreachable,
    RequestFailed,
)
from schnitzel.control.paths import default_socket_path
from schnitzel.control.server import ControlServer, ControlSocketError, SocketInUse
from tests.control.harness import (
    RawClient,
    Served,
    serving,
    socket_dir,
)
from tests.waits import until

NODE_KEYS = {
    "id", "kind", "plugin", "health", "in", "out", "dropped", "queue_depth", "queue_capacity",
    "paused", "throttle", "limits", "generation", "can_rollback",
}  # fmt: skip


def scenario(tmp_path: Path, steps: Any, **options: Any) -> None:
    async def main() -> None:
        async with serving(tmp_path, **options) as served:
            await steps(served)

    asyncio.run(main())


def test_status_and_nodes_answer_live(tmp_path: Path) -> None:
    async def steps(served: Served) -> None:
        await until(lambda: served.runtime.nodes["out"].metrics.delivered > 20)
        client = await RawClient.connect(served.path)
        status = await client.ask("status")
        assert status["ok"] and status["id"] == "status"
        report = status["result"]
        assert {"status", "stop_reason", "graph", "duration_s", "totals", "nodes"} <= set(report)
        assert {"run_id", "pid", "controller"} <= set(report)
        nodes = (await client.ask("nodes"))["result"]
        assert [n["id"] for n in nodes] == ["src", "mid", "out"]
        assert all(set(n) == NODE_KEYS for n in nodes)
        hello = (await client.ask("hello"))["result"]
        assert hello["protocol"] == 1 and hello["pid"] == os.getpid()
        assert hello["run_id"] == report["run_id"] and hello["read_only"] is False
        await client.close()

    scenario(tmp_path, steps)


def test_read_only_commands_leave_the_audit_log_alone(tmp_path: Path) -> None:
    async def steps(served: Served) -> None:
        client = await RawClient.connect(served.path)
        for cmd in ("hello", "status", "nodes", "describe", "events", "suggestions", "audit"):
            assert (await client.ask(cmd))["ok"], cmd
        plugins = await client.ask("plugins", kind="transform")
        assert plugins["ok"] and {"passthrough", "sample"} <= {p["name"] for p in plugins["result"]}
        await client.close()
        assert served.control.audit() == []

    scenario(tmp_path, steps)


def test_a_change_is_audited_with_the_peer_the_kernel_names(tmp_path: Path) -> None:
    async def steps(served: Served) -> None:
        client = await RawClient.connect(served.path)
        request = {
            "id": 1,
            "cmd": "pause",
            "args": {"node": "src"},
            "why": "maintenance",
            "client": {"via": "ctl", "ssh": "10.1.2.3 50000 10.1.2.4 22"},
        }
        await client.send(json.dumps(request).encode() + b"\n")
        reply = await client.reply()
        assert reply["ok"] and reply["result"]["paused"] == {"before": False, "after": True}
        request.update(id=2, cmd="resume", client={"via": "hacker", "ssh": None})
        await client.send(json.dumps(request).encode() + b"\n")
        assert (await client.reply())["ok"]
        await client.close()
        paused, resumed = served.control.audit()
        assert paused["action"] == "pause" and paused["why"] == "maintenance"
        assert paused["who"]["uid"] == os.geteuid() and paused["who"]["pid"] == os.getpid()
        assert paused["who"]["via"] == "ctl" and paused["who"]["ssh"].startswith("10.1.2.3")
        assert resumed["who"]["via"] == "api"  # a via we do not know is not recorded as given

    scenario(tmp_path, steps)


def test_a_refusal_of_the_runtime_is_refused_and_the_connection_goes_on(tmp_path: Path) -> None:
    async def steps(served: Served) -> None:
        client = await RawClient.connect(served.path)
        reply = await client.ask("pause", node="nope")
        assert (
            reply["error"]["code"] == "refused"
            and "nodes: mid, out, src" in reply["error"]["message"]
        )
        reply = await client.ask("throttle", node="src", sample_every=2)
        assert reply["error"]["code"] == "refused"
        reply = await client.ask("rollback", node="mid")
        assert (
            reply["error"]["code"] == "refused"
            and "nothing to roll back" in reply["error"]["message"]
        )
        assert (await client.ask("status"))["ok"]
        await client.close()
        assert [e["outcome"] for e in served.control.audit()] == ["refused"] * 3

    scenario(tmp_path, steps)


def test_throttle_and_swap_through_the_async_client(tmp_path: Path) -> None:
    async def steps(served: Served) -> None:
        client = AsyncControlClient(served.path)
        await client.connect()
        done = await client.request("throttle", node="src", rate_hz=100.0, why="calmer")
        assert done["changes"]["rate_hz"] == {"before": 500.0, "after": 100.0}
        swapped = await client.request("swap", node="mid", plugin="sample", config={"every": 2})
        assert swapped["applied"] and swapped["after"]["plugin"] == "sample"
        assert "every" in swapped["diff"]
        dry = await client.request("swap", node="mid", plugin="passthrough", dry_run=True)
        assert dry["applied"] is False
        rolled = await client.request("rollback", node="mid")
        assert rolled["after"]["plugin"] == "passthrough"
        with pytest.raises(RequestFailed) as caught:
            await client.request("swap", node="mid", plugin="no-such-plugin")
        assert caught.value.code == "refused"
        with pytest.raises(RequestFailed) as caught:
            await client.request("swap", node="mid", plugin="sample", config={"every": "x"})
        assert caught.value.code == "refused"
        await client.close()
        actions = [(e["action"], e["outcome"]) for e in served.control.audit()]
        assert actions == [
            ("throttle", "applied"), ("swap", "applied"), ("rollback", "applied"),
            ("swap", "refused"), ("swap", "refused"),
        ]  # fmt: skip

    scenario(tmp_path, steps)


def test_the_async_client_reports_a_runtime_that_went_away(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(tmp_path) as served:
            client = AsyncControlClient(served.path)
            assert (await client.request("hello"))["protocol"] == 1
            await served.server.close()
            with pytest.raises(ControlDisconnected):
                await client.request("status")
            with pytest.raises(ControlUnreachable) as caught:
                await client.request("status")
            assert "is it running?" in str(caught.value)

    asyncio.run(main())


def test_the_sync_client_says_the_runtime_cannot_be_reached() -> None:
    with socket_dir() as directory:
        with pytest.raises(ControlUnreachable) as caught:
            ControlClient(directory / "none.sock").request("status")
        assert "no socket there" in str(caught.value)
        assert "start it with `schnitzel run GRAPH`" in str(caught.value)
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(str(directory / "stale.sock"))
        stale.close()
        with pytest.raises(ControlUnreachable) as caught:
            ControlClient(directory / "stale.sock").request("status")
        assert "nothing listens there" in str(caught.value)


def test_a_path_that_is_not_a_socket_is_named_for_what_it_is() -> None:
    """A regular file or a directory was reported as "nothing listens there (a socket left
    by a runtime that is gone)"."""
    with socket_dir() as directory:
        (directory / "notes.txt").write_text("x")
        (directory / "sub").mkdir()
        for name, what in (("notes.txt", "a regular file"), ("sub", "a directory")):
            with pytest.raises(ControlUnreachable) as caught:
                ControlClient(directory / name).request("status")
            message = str(caught.value)
            assert f"is {what}, not a socket" in message, message
            assert "left by a runtime" not in message


def test_the_socket_is_private_and_its_new_directory_too(tmp_path: Path) -> None:
    async def main() -> None:
        with socket_dir() as directory:
            path = directory / "made" / "here" / "control.sock"
            runtime_control = _idle_control(tmp_path)
            server = ControlServer(runtime_control, path)
            await server.start()
            assert stat.S_ISSOCK(path.stat().st_mode)
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
            await server.close()
            assert not path.exists()

    asyncio.run(main())


def test_a_stale_socket_is_replaced(tmp_path: Path) -> None:
    async def main() -> None:
        with socket_dir() as directory:
            path = directory / "control.sock"
            stale = socket.socket(socket.AF_UNIX)
            stale.bind(str(path))
            stale.close()  # a runtime killed with -9 leaves this behind
            server = ControlServer(_idle_control(tmp_path), path)
            await server.start()
            client = await RawClient.connect(path)
            assert (await client.ask("hello"))["ok"]
            await client.close()
            await server.close()

    asyncio.run(main())


def test_a_live_socket_is_not_stolen(tmp_path: Path) -> None:
    async def main() -> None:
        with socket_dir() as directory:
            path = directory / "control.sock"
            first = ControlServer(_idle_control(tmp_path), path)
            await first.start()
            inode = path.stat().st_ino
            second = ControlServer(_idle_control(tmp_path), path)
            with pytest.raises(SocketInUse) as caught:
                await second.start()
            assert f"pid {os.getpid()}" in str(caught.value)
            await second.close()  # never started: touches nothing
            assert path.stat().st_ino == inode
            client = await RawClient.connect(path)
            assert (await client.ask("hello"))["ok"]
            await client.close()
            await first.close()
            assert not path.exists()

    asyncio.run(main())


def test_a_file_that_is_not_a_socket_is_left_alone(tmp_path: Path) -> None:
    async def main() -> None:
        with socket_dir() as directory:
            path = directory / "control.sock"
            path.write_text("precious")
            with pytest.raises(ControlSocketError) as caught:
                await ControlServer(_idle_control(tmp_path), path).start()
            assert "is not a socket" in str(caught.value)
            assert path.read_text() == "precious"

    asyncio.run(main())


def test_a_socket_path_too_long_is_refused_with_the_limit(tmp_path: Path) -> None:
    async def main() -> None:
        path = Path("/tmp/" + "x" * 120 + ".sock")
        with pytest.raises(ControlSocketError) as caught:
            await ControlServer(_idle_control(tmp_path), path).start()
        assert "at most 107" in str(caught.value)

    asyncio.run(main())


def test_close_removes_only_its_own_socket_file(tmp_path: Path) -> None:
    async def main() -> None:
        with socket_dir() as directory:
            path = directory / "control.sock"
            server = ControlServer(_idle_control(tmp_path), path)
            await server.start()
            path.unlink()  # an operator removed it; another runtime took the path
            other = socket.socket(socket.AF_UNIX)
            other.bind(str(path))
            await server.close()
            assert path.exists()
            other.close()

    asyncio.run(main())


def test_the_fallback_socket_of_a_deep_state_dir_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def main() -> None:
        with socket_dir() as runtime_dir:
            monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime_dir))
            deep = tmp_path / ("deep-" * 25) / "state"
            path = default_socket_path(deep)
            assert path.parent == runtime_dir / "schnitzel"
            server = ControlServer(_idle_control(tmp_path), path)
            await server.start()
            assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
            client = await RawClient.connect(default_socket_path(deep))
            assert (await client.ask("hello"))["ok"]
            await client.close()
            await server.close()

    asyncio.run(main())


def test_a_slow_command_goes_on_after_its_client_is_told_to_look_later(tmp_path: Path) -> None:
    release = asyncio.Event()
    finished: list[str] = []

    class SlowSwap(RuntimeControl):
        async def swap(self, node_id: str, plugin: str, config: Any = None, **_: Any) -> Any:
            await release.wait()
            finished.append(node_id)
            return {"node": node_id}

    async def steps(served: Served) -> None:
        client = await RawClient.connect(served.path)
        reply = await client.ask("swap", node="mid", plugin="sample")
        assert reply["error"]["code"] == "busy"
        assert "still running" in reply["error"]["message"]
        assert (await client.ask("status"))["ok"]  # the connection is still served
        release.set()
        await until(lambda: finished == ["mid"])
        await client.close()

    scenario(tmp_path, steps, control_class=SlowSwap, slow_command_timeout_s=1.0)


def test_a_bug_is_an_internal_error_logged_with_its_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Buggy(RuntimeControl):
        def describe(self) -> dict[str, Any]:
            raise KeyError("oops")

    async def steps(served: Served) -> None:
        client = await RawClient.connect(served.path)
        reply = await client.ask("describe")
        assert reply["error"]["code"] == "internal" and "KeyError" in reply["error"]["message"]
        assert (await client.ask("status"))["ok"]  # the same connection goes on
        await client.close()

    with caplog.at_level(logging.ERROR, logger="schnitzel.control"):
        scenario(tmp_path, steps, control_class=Buggy)
    failed = [r for r in caplog.records if "control request failed" in r.getMessage()]
    assert failed and failed[0].exc_info is not None


def test_another_uid_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import schnitzel.control.server as server_module

    monkeypatch.setattr(server_module, "_peer_credentials", lambda writer: (4242, 1))

    async def steps(served: Served) -> None:
        client = await RawClient.connect(served.path)
        reply = await client.reply()
        assert reply["error"]["code"] == "refused" and "uid 4242" in reply["error"]["message"]
        assert await client.rest() == b""
        await client.close()

    scenario(tmp_path, steps)


def _idle_control(tmp_path: Path) -> RuntimeControl:
    """A control over a runtime that is built but not run (enough for hello)."""
    from schnitzel.runtime import Runtime
    from tests.control.harness import ENDLESS
    from tests.runtime.harness import graph_from

    return RuntimeControl(Runtime(graph_from(tmp_path, ENDLESS), state_dir=tmp_path / "state"))
