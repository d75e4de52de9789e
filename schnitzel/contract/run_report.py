"""The run report (DESIGN 3.5, docs/contracts/run_report.md) as types: one definition the
runtime builds (`runtime/report.py`), the console reads (`tui/model.py`) and `schnitzel ctl`
prints, so a renamed key fails the type check instead of showing as 0 on a screen.

They are TypedDicts, so the report stays the plain JSON object scripts read (the same keys
on the wire, in `--report-json` files and in `status --json`) and costs nothing to build on
the metrics path. A report that comes from elsewhere (the control socket: an attached
console, `schnitzel ctl status`) is checked once, at that edge, by `parse_run_report`.
Extra keys are allowed on the wire (DESIGN 3.5); a client keeps only the ones named here.
The recent events that go with the report (`events`) are typed here too (`EventEntry`).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any, Literal, NotRequired

from typing_extensions import TypedDict  # pydantic validates only this one on Python 3.11

from schnitzel.contract.exact_shape import NotExact, read_exact
from schnitzel.errors import ReportShapeError

if TYPE_CHECKING:
    from pydantic import TypeAdapter

__all__ = [
    "DurableReport",
    "ErrorEntry",
    "EventEntry",
    "LostReport",
    "NodeReport",
    "NodeSummary",
    "Percentiles",
    "RunReport",
    "RunStatus",
    "Totals",
    "TroubleReport",
    "node_summary",
    "parse_events",
    "parse_node_summaries",
    "parse_run_report",
]


RunStatus = Literal["running", "ok", "degraded", "error"]
"""`running` in a live snapshot; one of the other three once the run ended."""


class Percentiles(TypedDict):
    """Milliseconds at the 50th and 99th percentile (`latency_ms`, `processing_ms`)."""

    p50: float
    p99: float


class Totals(TypedDict):
    """The whole graph's counts (`totals`)."""

    emitted: int
    delivered: int
    dropped: int
    errors: int
    filtered: int
    in_flight: int


class ErrorEntry(TypedDict):
    """One of a node's `recent_errors`."""

    ts: float
    packet_id: str | None
    error: str
    message: str


class TroubleReport(TypedDict):
    """What a plugin reports it is retrying now (`trouble`)."""

    reason: str
    since: float
    reason_since: float
    last: float
    retries: int


class LostReport(TypedDict):
    """Packets a durable store owed at start that its file no longer held (`durable.lost`)."""

    count: int
    first_seq: int | None
    last_seq: int | None
    cause: str


class DurableReport(TypedDict):
    """A durable inbox's store (`durable`)."""

    path: str
    backlog: int
    bytes: int
    oldest_age_s: float
    fill_rate_per_s: float
    drain_rate_per_s: float
    eta_s: float | None
    time_to_full_s: float | None
    max_bytes: int
    max_packets: int | None
    unconfirmed: int
    replayed: int
    accepted: int
    settled: int
    disk_errors: int
    last_error: str
    quarantined: str | None
    lost: LostReport | None
    rows_quarantined: int
    parked: int
    parked_bytes: int
    parked_at_open: int
    parked_this_run: int
    requeued: int
    requeued_from_quarantine: int
    parked_dropped: int
    max_parked: int


NodeReport = TypedDict(  # the functional form: `in` is a Python keyword
    "NodeReport",
    {
        "kind": str,
        "plugin": str,
        "in": int,
        "out": int,
        "dropped": int,
        "errors": int,
        "abandoned": int,
        "queue_depth": int,
        "queue_depth_max": int,
        "latency_ms": Percentiles,
        "health": str,
        "health_reason": str,
        "received": int,
        "filtered": int,
        "dropped_by_reason": dict[str, int],
        "processing_ms": Percentiles,
        "rate_in_per_s": float,
        "rate_out_per_s": float,
        "queue_capacity": int,
        "queue_bytes": int,
        "queue_max_bytes": int | None,
        "overflow": str,
        "paused": bool,
        "recent_errors": list[ErrorEntry],
        "trouble": TroubleReport | None,
        "retries": int,
        "throttle": dict[str, float | None],
        "limits": dict[str, list[float]],
        "declared_limits": dict[str, list[float] | None],
        "generation": int,
        "can_rollback": bool,
        "plugin_stats": NotRequired[dict[str, Any]],  # a plugin with a `stats()` method
        "delivered": NotRequired[int],  # sinks
        "rate_hz": NotRequired[float | None],  # sources the runtime paces
        "durable": NotRequired[DurableReport],  # nodes with a durable inbox
    },
)
"""One node's entry (`nodes.<id>`)."""


class RunReport(TypedDict):
    """The whole report, and the live snapshot (`status` "running") of the same shape."""

    status: RunStatus
    stop_reason: str | None
    graph: str
    duration_s: float
    totals: Totals
    stop_detail: str
    stopping: bool
    started: float | None
    run_id: str
    pid: int
    controller: str
    nodes: dict[str, NodeReport]


NodeSummary = TypedDict(
    "NodeSummary",
    {
        "id": str,
        "kind": str,
        "plugin": str,
        "health": str,
        "in": int,
        "out": int,
        "dropped": int,
        "queue_depth": int,
        "queue_capacity": int,
        "paused": bool,
        "throttle": dict[str, float | None],
        "limits": dict[str, list[float]],
        "generation": int,
        "can_rollback": bool,
    },
)
"""One node as the `nodes` control command answers: its id and a few keys of its report."""


class EventEntry(TypedDict):
    """One of the runtime's recent events (`events`: health changes, errors, stops)."""

    seq: int
    """From 1 in the order they happened: a client asks for those above the last it saw."""
    ts: float
    level: str
    """info, warning or error."""
    node: str | None
    message: str


def node_summary(node_id: str, node: NodeReport) -> NodeSummary:
    """The `nodes` command's entry of a node."""
    return {
        "id": node_id,
        "kind": node["kind"],
        "plugin": node["plugin"],
        "health": node["health"],
        "in": node["in"],
        "out": node["out"],
        "dropped": node["dropped"],
        "queue_depth": node["queue_depth"],
        "queue_capacity": node["queue_capacity"],
        "paused": node["paused"],
        "throttle": node["throttle"],
        "limits": node["limits"],
        "generation": node["generation"],
        "can_rollback": node["can_rollback"],
    }


MAX_PROBLEMS = 5
"""Problems named in a `ReportShapeError`; the rest are counted."""


def parse_run_report(data: object, where: str) -> RunReport:
    """`data` (JSON as it came from `where`, for example "the control socket") as a
    `RunReport`, or `ReportShapeError` naming the keys that are missing or of the wrong type."""
    return _parse(RunReport, data, "the run report", where)


def parse_node_summaries(data: object, where: str) -> list[NodeSummary]:
    """`data` (the `nodes` command's answer, from `where`) as `NodeSummary`s, or
    `ReportShapeError`."""
    return _parse(list[NodeSummary], data, "the node list", where)


@cache
def _adapter(shape: Any) -> TypeAdapter[Any]:
    """The validator of `shape`, built on first use (building one takes milliseconds, and
    only clients that read a report from elsewhere need one)."""
    from pydantic import TypeAdapter

    return TypeAdapter(shape)


def parse_events(data: object, where: str) -> list[EventEntry]:
    """`data` (the `events` command's answer, from `where`) as `EventEntry`s, or
    `ReportShapeError`."""
    return _parse(list[EventEntry], data, "the event list", where)


def _parse(shape: Any, data: object, what: str, where: str) -> Any:
    # A report of the exact shape (what a runtime of this version sends) is read without
    # pydantic, whose import and validator cost `ctl status` most of its start-up.
    try:
        return read_exact(shape, data)
    except NotExact:
        pass
    from pydantic import ValidationError

    try:
        return _adapter(shape).validate_python(data)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(part) for part in error['loc']) or 'the report'}: {error['msg']}"
            for error in exc.errors()
        ]
        more = len(problems) - MAX_PROBLEMS
        listed = "; ".join(problems[:MAX_PROBLEMS]) + (f"; and {more} more" if more > 0 else "")
        raise ReportShapeError(
            f"{what} from {where} does not have the shape this schnitzel reads "
            f"({listed}): run the same schnitzel version on both ends"
        ) from None
