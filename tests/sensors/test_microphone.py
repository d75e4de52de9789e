"""The `microphone` source: its environment check names what is missing (on a machine without
PortAudio, as this one may be: the real condition, not a simulation), and chunks the graph
is too slow for are counted and reported, never dropped silently."""

from __future__ import annotations

import ctypes.util
import logging
import threading
from pathlib import Path

import numpy as np

from schnitzel import NodeContext
from schnitzel.validate.validator import validate_text
from schnitzel_plugins.sensors.microphone import Microphone, MicrophoneConfig


def test_the_environment_check_says_what_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "graph.yaml"
    path.write_text(
        """version: 2
nodes:
  - {id: mic, kind: source, plugin: microphone, config: {sample_rate: 16000}}
  - {id: out, kind: sink, plugin: "null"}
edges:
  - {from: mic, to: out}
"""
    )
    result = validate_text(path.read_text(), source=str(path), path=path)
    messages = " ".join(p.render() for p in result.report.problems)
    if ctypes.util.find_library("portaudio") is None:
        assert "PortAudio is missing" in messages
        assert "apt-get install libportaudio2" in messages
    else:  # PortAudio here: a default input device, or a problem that says there is none
        assert messages == "" or "no input device" in messages


def test_chunks_the_graph_is_too_slow_for_are_counted_as_overruns(tmp_path: Path) -> None:
    stopping = threading.Event()
    context = NodeContext("mic", tmp_path, tmp_path, logging.getLogger("mic"), stopping=stopping)
    microphone = Microphone(MicrophoneConfig(queue_chunks=2, sample_rate=16000), context)
    block = np.full((1600, 1), 0.25, dtype=np.float32)
    for _ in range(5):  # PortAudio's callback, three blocks more than the queue holds
        microphone._recorded(block, 1600, None, None)
    assert microphone.stats() == {"overruns": 3}
    assert context.trouble.reason == "the graph is behind the microphone: chunks lost"
    packets = microphone.packets()
    first, second = next(packets), next(packets)
    stopping.set()
    assert [p.seq for p in (first, second) if p is not None] == [0, 1]
    assert second is not None and second.payload["start_s"] == 0.1
    assert second.payload["samples"] == [[0.25] * 1600]
    assert list(packets) == []  # the run stopped: the source ends
