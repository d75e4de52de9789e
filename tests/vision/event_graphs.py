"""The camera graph the events tests run: video_file -> detect -> track -> zones -> events,
into a durable http sink and a jsonl log; each test adds its own events and retry options."""

from __future__ import annotations

from pathlib import Path

from tests.vision.conftest import NUDENET


def camera_events_graph(video: Path, url: str, events: list[str], retry: str) -> str:
    """The graph's text (without `version`): `events` are extra option lines of the events
    node (`key: value`), `retry` the http sink's retry options (`retry_initial_s: 0.05`)."""
    event_options = "".join(f"      {line}\n" for line in events)
    return f"""
nodes:
  - {{id: cam, kind: source, plugin: video_file, config: {{path: '{video}'}}}}
  - id: det
    kind: compute
    plugin: detect
    config: {{model: '{NUDENET}', classes: [FACE_FEMALE], batch_max: 1}}
  - {{id: trk, kind: policy, plugin: track, config: {{min_hits: 2}}}}
  - id: zon
    kind: policy
    plugin: zones
    config: {{zones: [{{name: dock, points: [[0.5, 0], [1, 0], [1, 1], [0.5, 1]],
                        normalized: true, inertia: 2}}]}}
  - id: evt
    kind: transform
    plugin: events
    config:
      classes: {{FACE_FEMALE: {{type: person, severity: info}}}}
{event_options}  - id: up
    kind: sink
    plugin: http
    config: {{url: "{url}", {retry}}}
    inbox: {{durable: {{path: state/up.db}}}}
  - {{id: log, kind: sink, plugin: jsonl, config: {{path: events.jsonl}}}}
edges:
  - {{from: cam, to: det}}
  - {{from: det, to: trk}}
  - {{from: trk, to: zon}}
  - {{from: zon, to: evt}}
  - {{from: evt, to: up}}
  - {{from: evt, to: log}}
"""
