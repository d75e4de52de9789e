"""The live sources' rules without a stream: backoff and jitter, credentials kept out of the
graph file and out of logs."""

from __future__ import annotations

import itertools
import random

import pytest

from schnitzel.validate import validate_text
from schnitzel_plugins.vision.live import Backoff
from schnitzel_plugins.vision.live_source import Rtsp, redact_url


def test_backoff_doubles_from_half_a_second_to_ten_within_twenty_percent() -> None:
    delays = list(itertools.islice(Backoff().delays(random.Random(7)), 12))
    nominal = [0.5, 1, 2, 4, 8, 10, 10, 10, 10, 10, 10, 10]
    for delay, expected in zip(delays, nominal, strict=True):
        assert expected * 0.8 <= delay <= expected * 1.2
    assert len({round(d, 6) for d in delays[5:]}) > 1  # jittered, not in step


def test_urls_are_redacted_for_logs() -> None:
    assert redact_url("rtsp://admin:s3cret@10.0.0.5:554/live") == "rtsp://***@10.0.0.5:554/live"
    assert redact_url("rtsp://10.0.0.5/live") == "rtsp://10.0.0.5/live"


def rtsp_graph(url: str, extra: str = "") -> str:
    return (
        "version: 2\nnodes:\n"
        f"  - {{id: cam, kind: source, plugin: rtsp, config: {{url: '{url}'{extra}}}}}\n"
        "  - {id: out, kind: sink, plugin: 'null'}\n"
        "edges: [{from: cam, to: out}]\n"
    )


def test_a_password_in_the_graph_file_is_refused_with_where_to_put_it() -> None:
    problems = validate_text(rtsp_graph("rtsp://admin:s3cret@cam/live"), "g.yaml").report
    messages = [p.message for p in problems.problems]
    assert any("password_env" in m for m in messages), messages
    assert not any("s3cret" in m for m in messages), messages  # not echoed back either


def test_credentials_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAM_USER", "op")
    monkeypatch.setenv("CAM_PASS", "p@ss:word")
    config = Rtsp.Config.model_validate(
        {"url": "rtsp://10.0.0.5:554/live", "username_env": "CAM_USER", "password_env": "CAM_PASS"}
    )
    source = Rtsp.__new__(Rtsp)
    source.config = config
    assert source._url() == "rtsp://op:p%40ss%3Aword@10.0.0.5:554/live"
    monkeypatch.delenv("CAM_PASS")
    report = validate_text(
        rtsp_graph("rtsp://10.0.0.5/live", ", password_env: CAM_PASS"), "g.yaml"
    ).report
    assert [(p.code, p.severity) for p in report.problems] == [("environment", "warning")]
