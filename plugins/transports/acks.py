"""JetStream publishes with their acks awaited asynchronously, on one reply subscription.

What nats-py's `JetStreamContext.publish_async` does, with one difference that matters to a
sink: a refusal (`{"error": ...}`, e.g. err_code 10054 for a message over the stream's
`max_msg_size`) reaches the publish's future as an `APIError`. nats-py 2.16's reply handler
raises it inside the subscription callback instead, so the future never resolves and the
refusal looks like a missing ack.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription

__all__ = ["AckedPublisher", "PubAck"]

_STATUS = "Status"
_NO_RESPONDERS = "503"
_EXPECTED_STREAM = "Nats-Expected-Stream"


class PubAck:
    """The server's ack of one publish: the stream and sequence, and whether it was a
    duplicate (the stream already held a message with that Nats-Msg-Id)."""

    __slots__ = ("duplicate", "seq", "stream")

    def __init__(self, stream: str, seq: int, duplicate: bool) -> None:
        self.stream, self.seq, self.duplicate = stream, seq, duplicate


class AckedPublisher:
    """Publishes on one connection; each `publish` returns a future for its ack."""

    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self._prefix = f"{nc._inbox_prefix.decode()}.{nc._nuid.next().decode()}."
        self._futures: dict[str, asyncio.Future[PubAck]] = {}
        self._next = 0
        self._subscription: Subscription | None = None

    async def publish(
        self, subject: str, body: bytes, headers: dict[str, str], stream: str | None
    ) -> asyncio.Future[PubAck]:
        """Send one message; the future resolves to its `PubAck` or fails with the server's
        refusal (`nats.js.errors.APIError`, `NoStreamResponseError` when no stream captures
        the subject). It never resolves when no answer comes: wait on it with a timeout."""
        if self._subscription is None:
            self._subscription = await self._nc.subscribe(self._prefix + "*", cb=self._answer)
        self._next += 1
        token = str(self._next)
        future: asyncio.Future[PubAck] = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda _done: self._futures.pop(token, None))
        self._futures[token] = future
        if stream is not None:
            headers = {**headers, _EXPECTED_STREAM: stream}
        await self._nc.publish(subject, body, reply=self._prefix + token, headers=headers)
        return future

    async def _answer(self, msg: Msg) -> None:
        future = self._futures.get(msg.subject[len(self._prefix) :])
        if future is None or future.done():
            return
        try:
            future.set_result(_ack_of(msg))
        except Exception as exc:  # the refusal or an unreadable answer: the publish's verdict
            future.set_exception(exc)


def _ack_of(msg: Msg) -> PubAck:
    """The ack in `msg`, or raise what the server said instead."""
    import nats.js.errors

    if msg.headers and msg.headers.get(_STATUS) == _NO_RESPONDERS:
        raise nats.js.errors.NoStreamResponseError
    answer: dict[str, Any] = json.loads(msg.data)
    error = answer.get("error")
    if error is not None:
        raise nats.js.errors.APIError(
            code=error.get("code"),
            description=error.get("description"),
            err_code=error.get("err_code"),
        )
    return PubAck(
        str(answer.get("stream")), int(answer.get("seq", 0)), bool(answer.get("duplicate"))
    )
