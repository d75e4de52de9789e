"""`audio_file -> audio_level` on a WAV the test writes: a 1 kHz tone, a 100 Hz hum and
silence give the levels a sine has (RMS = amplitude / sqrt 2) and the voice flag only on the
tone; the levels against numpy computed independently on a stereo chunk."""

from __future__ import annotations

import math
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from schnitzel_plugins.sensors.levels import FLOOR_DBFS, levels_of
from schnitzel_plugins.sensors.wav_reader import read_chunks, wav_info
from tests.runtime import plugins
from tests.runtime.harness import assert_counts_add_up, graph_from, run
from tests.sensors.wav_maker import write_wav

SINE_RMS = 0.5 / math.sqrt(2)
QUANTUM = 1 / 32768  # one step of 16-bit audio


def test_tone_hum_and_silence_give_the_expected_levels_and_voice_flags(tmp_path: Path) -> None:
    write_wav(tmp_path / "in.wav", [(1000, 0.5, 0.5), (100, 0.5, 0.5), (0, 0, 0.5)])
    graph = graph_from(
        tmp_path,
        """
nodes:
  - {id: mic, kind: source, plugin: audio_file, config: {path: in.wav, chunk_ms: 100}}
  - {id: level, kind: transform, plugin: audio_level}
  - {id: out, kind: sink, plugin: "tests.runtime.plugins:Recorder"}
edges:
  - {from: mic, to: level}
  - {from: level, to: out}
""",
    )
    report = run(graph, tmp_path)
    assert_counts_add_up(report, graph)
    levels = [p.payload for p in plugins.RECORDS["out"]]
    assert len(levels) == 15
    assert [p.seq for p in plugins.RECORDS["out"]] == list(range(15))
    assert [lv["start_s"] for lv in levels] == pytest.approx([n / 10 for n in range(15)])
    tone, hum, silence = levels[:5], levels[5:10], levels[10:]
    for chunk in tone + hum:
        assert chunk["rms"] == pytest.approx(SINE_RMS, abs=2 * QUANTUM)
        assert chunk["peak"] == pytest.approx(0.5, abs=2 * QUANTUM)
        assert chunk["dbfs"] == pytest.approx(20 * math.log10(SINE_RMS), abs=0.01)
    for chunk in tone:
        assert chunk["bands"]["300-3400"] > 0.999
        assert chunk["voice"] is True
    for chunk in hum:
        assert chunk["bands"]["0-300"] > 0.999
        assert chunk["voice"] is False  # loud, but not in the speech band
    for chunk in silence:
        assert chunk == {**chunk, "rms": 0.0, "peak": 0.0, "dbfs": FLOOR_DBFS, "voice": False}
    assert {p.kind for p in plugins.RECORDS["out"]} == {"sensor"}


def test_levels_match_numpy_on_a_stereo_chunk(tmp_path: Path) -> None:
    write_wav(tmp_path / "st.wav", [(440, 0.3, 0.25), (2500, 0.2, 0.25)], 8000, channels=2)
    info = wav_info(tmp_path / "st.wav")
    assert (info.sample_rate, info.channels, info.sample_bytes) == (8000, 2, 2)
    (chunk,) = list(read_chunks(tmp_path / "st.wav", 4000))
    assert chunk.samples.shape == (4000, 2)
    mono = chunk.samples.astype(np.float64).mean(axis=1)
    spectrum = np.abs(np.fft.fft(mono)) ** 2  # the full FFT, not rfft: an independent route
    freqs = np.abs(np.fft.fftfreq(mono.size, 1 / 8000))
    low = spectrum[freqs < 1000].sum() / spectrum.sum()
    got = levels_of(chunk.samples, 8000, [(0, 1000), (1000, 4001)], (300, 3400), -40, 0.5)
    assert got.rms == pytest.approx(float(np.sqrt(np.mean(mono**2))), rel=1e-9)
    assert got.peak == pytest.approx(float(np.abs(mono).max()), rel=1e-9)
    assert got.bands["0-1000"] == pytest.approx(low, abs=1e-6)
    assert got.bands["1000-4001"] == pytest.approx(1 - low, abs=1e-6)
    assert got.voice is True


def test_a_file_that_is_not_a_wav_is_a_validation_problem(tmp_path: Path) -> None:
    (tmp_path / "in.wav").write_bytes(b"RIFF nonsense")
    from schnitzel.validate.validator import validate_text

    path = tmp_path / "graph.yaml"
    path.write_text(
        """version: 2
nodes:
  - {id: mic, kind: source, plugin: audio_file, config: {path: in.wav}}
  - {id: out, kind: sink, plugin: "null"}
edges:
  - {from: mic, to: out}
"""
    )
    result = validate_text(path.read_text(), source=str(path), path=path)
    messages = " ".join(p.render() for p in result.report.problems)
    assert "not a PCM WAV file" in messages and "ffmpeg" in messages


@pytest.mark.parametrize(
    ("width", "encode"),
    [
        (1, lambda v: bytes([round(v * 128) + 128])),
        (2, lambda v: round(v * 32768).to_bytes(2, "little", signed=True)),
        (3, lambda v: round(v * (1 << 23)).to_bytes(3, "little", signed=True)),
        (4, lambda v: round(v * (1 << 31)).to_bytes(4, "little", signed=True)),
    ],
)
def test_every_pcm_width_reads_as_the_same_floats(
    tmp_path: Path, width: int, encode: Callable[[float], bytes]
) -> None:
    values = [0.0, 0.5, -0.5, -1.0, 0.25, -0.25]  # exact in every width; two channels
    with wave.open(str(tmp_path / "w.wav"), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(width)
        wav.setframerate(8000)
        wav.writeframes(b"".join(encode(v) for v in values))
    (chunk,) = list(read_chunks(tmp_path / "w.wav", 100))
    assert chunk.samples.tolist() == [[0.0, 0.5], [-0.5, -1.0], [0.25, -0.25]]
