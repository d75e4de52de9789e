"""A loopback relay to an MQTT broker that can stop passing a client's PUBACKs: the broker
then reads nothing more on that connection (as a broker too slow to keep up, or gone) until
the test lets the held packets through, in order, with whatever came after them."""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType

from tests.transports.nats_server import HANG_GUARD_S

__all__ = ["PubackGate"]

_PUBACK = 4


def _packet_length(buffer: bytes) -> int | None:
    """The length of the first whole MQTT packet in `buffer`, None until it is all there."""
    multiplier, remaining = 1, 0
    for index in range(1, min(len(buffer), 5)):
        remaining += (buffer[index] & 0x7F) * multiplier
        if not buffer[index] & 0x80:
            total = 1 + index + remaining
            return total if len(buffer) >= total else None
        multiplier *= 128
    return None


class PubackGate:
    """Listens on 127.0.0.1 and relays each connection to the broker on `port`. Once `hold`
    was called, a client's first PUBACK and every packet after it wait until `release`."""

    def __init__(self, port: int) -> None:
        self._broker_port = port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"mqtt://127.0.0.1:{self._listener.getsockname()[1]}"
        self._holding = threading.Event()
        self._released = threading.Event()
        self._lock = threading.Lock()
        self.held_pubacks = 0
        """PUBACKs the broker has not been given (counted until `release`)."""
        self._threads: list[threading.Thread] = []
        self._start(self._accept)

    def hold(self) -> None:
        self._holding.set()

    def release(self) -> None:
        self._released.set()

    def _start(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def _accept(self) -> None:
        while True:
            try:
                client, _address = self._listener.accept()
            except OSError:  # closed
                return
            broker = socket.create_connection(("127.0.0.1", self._broker_port))
            self._start(self._to_broker, client, broker)
            self._start(self._to_client, broker, client)

    def _to_client(self, broker: socket.socket, client: socket.socket) -> None:
        while chunk := _recv(broker):
            _send(client, chunk)
        _shut(client)
        broker.close()

    def _to_broker(self, client: socket.socket, broker: socket.socket) -> None:
        buffer, held = b"", list[bytes]()
        while chunk := _recv(client):
            buffer += chunk
            while (length := _packet_length(buffer)) is not None:
                packet, buffer = buffer[:length], buffer[length:]
                if packet[0] >> 4 == _PUBACK and self._holding.is_set() and not held:
                    held.append(b"")  # from here on, everything waits
                if held and not self._released.is_set():
                    held.append(packet)
                    if packet[0] >> 4 == _PUBACK:
                        with self._lock:
                            self.held_pubacks += 1
                    continue
                _send(broker, b"".join(held) + packet)
                held.clear()
        if held:
            self._released.wait(3 * HANG_GUARD_S)
            _send(broker, b"".join(held))
        _shut(broker)
        client.close()

    def close(self) -> None:
        self._released.set()
        with contextlib.suppress(OSError):  # wakes the accept (closing alone does not)
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for thread in self._threads:
            thread.join(HANG_GUARD_S)

    def __enter__(self) -> PubackGate:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _send(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):  # the other side is gone: so is what it would read
        sock.sendall(data)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
