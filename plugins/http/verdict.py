"""What an answer from the backend says: about the backend, or about the packet.

    answer ─┬─ 2xx ──────────────────────────────────────────────▶ delivered
            ├─ 5xx, 429, 408, 425, no answer (timeout, refused) ──▶ transient: retried
            ├─ the backend or its address is wrong (3xx, 401, ...) ─▶ unavailable: retried
            └─ the request is wrong (400, 409, 415, 422, ...) ─┬─ another packet passed
                                                               │  just before ──▶ poison
                                                               └─ no: every request is
                                                                  refused ──▶ unavailable

A refusal is a **poison pill** (the node's `on_error` policy gets the packet) only when it
names a status that can be about one request *and* the backend accepted another packet
right before: then the backend works, and this packet is what it refuses. A backend that
refuses every request the same way is unusable, not the packet: the sink keeps the packet
and retries it (pacing by the circuit breaker) until the backend takes it.

Pure functions, no I/O: tested without a server.
"""

from __future__ import annotations

from enum import Enum

__all__ = [
    "BACKEND_STATUSES",
    "PAYLOAD_TOO_LARGE",
    "TRANSIENT_STATUSES",
    "Answer",
    "classify",
    "is_poison",
]

TRANSIENT_STATUSES = frozenset({408, 425, 429})
"""Client-error statuses that mean "try again later"; every 5xx is transient too."""

BACKEND_STATUSES = frozenset({401, 403, 404, 405, 406, 407, 410, 411, 414, 421, 426, 431})
"""Refusals that say the backend, its address or this node's configuration is wrong (a
credential, the URL, a proxy, a protocol), whatever the packet: never a poison pill.
Every 3xx is one too: the sink does not follow redirects (a redirected POST may not be the
same request), so a backend that moved is unusable until the URL is fixed."""

PAYLOAD_TOO_LARGE = 413
"""Poison only for a body much larger than what the backend accepted (see `classify`)."""

LARGER_THAN_ACCEPTED = 2
"""A 413 is about the packet only when its body is more than this many times the largest
body the backend accepted: a limit that refuses bodies of the usual size is the backend's."""


class Answer(Enum):
    """What one answer means, before looking at the answers around it."""

    DELIVERED = "delivered"
    """2xx: the backend took it."""
    TRANSIENT = "transient"
    """The backend or the network may recover on its own: retry with backoff."""
    BACKEND = "backend"
    """The backend or the configuration is wrong for every request: unavailable."""
    PACKET = "packet"
    """The backend refuses this request: poison if it accepts others, else unavailable."""


def classify(status: int | None, body_bytes: int = 0, largest_accepted: int = 0) -> Answer:
    """What an answer means. `status` None is no answer at all (timeout, connection error).
    `body_bytes` is the size of the refused request's body, `largest_accepted` the largest
    body the backend accepted so far (0: none)."""
    if status is None or status >= 500 or status in TRANSIENT_STATUSES:
        return Answer.TRANSIENT
    if 200 <= status < 300:
        return Answer.DELIVERED
    if status < 400 or status in BACKEND_STATUSES:
        return Answer.BACKEND
    if status == PAYLOAD_TOO_LARGE and not (
        largest_accepted and body_bytes > LARGER_THAN_ACCEPTED * largest_accepted
    ):
        return Answer.BACKEND
    return Answer.PACKET


def is_poison(answer: Answer, accepted_recently: bool) -> bool:
    """True when a refusal is about the packet: a `PACKET` answer while the backend accepts
    other packets. Anything else that is not delivered is retried."""
    return answer is Answer.PACKET and accepted_recently
