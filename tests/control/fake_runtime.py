"""A fake runtime for the trust tests: serves a unix socket and writes down every byte a
client sends it (it must be none). Run as another user by the tests.

    python fake_runtime.py plant SOCKET LOG            # as the planting user: a dir of its own
    python fake_runtime.py handoff SOCKET LOG UID      # as root: bind, give the file to UID,
                                                       # then listen as nobody
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

NOBODY = 65534


def main() -> None:
    how, path, log_path = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    log = open(log_path, "a", buffering=1)  # noqa: SIM115 - open for the process's life
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if how == "plant":
        path.parent.mkdir(exist_ok=True)
        os.chmod(path.parent, 0o755)  # so the victim can reach the socket
        server.bind(str(path))
        os.chmod(path, 0o666)
    else:
        server.bind(str(path))
        os.chown(path, int(sys.argv[4]), -1)
        os.chmod(path, 0o600)  # the file looks exactly like the victim's runtime's
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)  # SO_PEERCRED reports who called listen()
    server.listen(8)
    log.write(f"ready uid {os.geteuid()}\n")
    while True:
        conn, _ = server.accept()
        conn.settimeout(10)
        try:
            data = conn.recv(65536)
        except OSError:
            data = b""
        log.write(f"received {len(data)} bytes {data[:200]!r}\n")
        if data:
            conn.sendall(b'{"id": 1, "ok": true, "result": {"stopping": true}}\n')
        conn.close()


if __name__ == "__main__":
    main()
