"""What an `http_ingest` request body holds: JSON objects, from a JSON or an NDJSON body.

Pure parsing, no server and no runtime: a body is one JSON object, a JSON array of objects,
or NDJSON (one object per line, blank lines ignored). Anything else is refused with a message
for the device's operator that names the line or the item.
"""

from __future__ import annotations

from typing import Any

from schnitzel import read_json
from schnitzel_plugins.sensors.errors import BodyRefused

__all__ = ["NDJSON_TYPES", "records_of"]

NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl"})
"""Content types read as one JSON object per line."""
JSON_TYPES = frozenset({"application/json", ""})
"""Content types read as one JSON document (no content type: JSON)."""


def records_of(body: bytes, content_type: str, max_records: int) -> list[dict[str, Any]]:
    """The JSON objects in `body`, in order; raises BodyRefused when it holds anything else."""
    if content_type in NDJSON_TYPES:
        records = _ndjson(body)
    elif content_type in JSON_TYPES or content_type.endswith("+json"):
        records = _json(body)
    else:
        raise BodyRefused(
            415,
            f"content type {content_type!r} is not accepted: send application/json or "
            "application/x-ndjson",
        )
    if not records:
        raise BodyRefused(400, "the body holds no record: send at least one JSON object")
    if len(records) > max_records:
        raise BodyRefused(
            413, f"{len(records)} records in one body, at most {max_records}: split the body"
        )
    return records


def _json(body: bytes) -> list[dict[str, Any]]:
    try:
        value = read_json(body)
    except ValueError as exc:
        raise BodyRefused(400, f"the body is not JSON ({exc})") from None
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        for n, item in enumerate(value):
            if not isinstance(item, dict):
                raise BodyRefused(
                    400, f"item {n} of the array is a {type(item).__name__}, not a JSON object"
                )
        return value
    raise BodyRefused(
        400, f"the body is a JSON {type(value).__name__}: send an object or an array of objects"
    )


def _ndjson(body: bytes) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for number, line in enumerate(body.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            value = read_json(line)
        except ValueError as exc:
            raise BodyRefused(400, f"line {number} is not JSON ({exc})") from None
        if not isinstance(value, dict):
            raise BodyRefused(400, f"line {number} is a JSON {type(value).__name__}, not an object")
        records.append(value)
    return records
