"""Telling a poison pill from a backend that refuses everything, by the packets around it.

A refusal that may be about the packet (422, ...) is never judged on its own:

    refused ──▶ try the next packets ──┬─ one is accepted ──▶ ask the refused ones again,
                                       │                      right after it: refused again
                                       │                      = a poison pill
                                       ├─ `LOOKAHEAD` more refused ──▶ the backend refuses
                                       │      everything: keep sending the first until it is
                                       │      taken, then ask the others again
                                       └─ none left to try ──▶ poison if the backend accepted
                                              another packet recently, else keep sending

No I/O and no clock: `send` does the requests, so the rules are tested against a model.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

from schnitzel_plugins.http.errors import HttpSinkError

__all__ = ["LOOKAHEAD", "Refused", "judge"]

T = TypeVar("T")

LOOKAHEAD = 4
"""Packets tried after one refused in a way that may be about the packet, before the
backend is taken to refuse everything."""


class Refused(HttpSinkError):
    """`send(item, doubt=True)` got a refusal that may be about the item or the backend."""

    def __init__(self, message: str, recent: bool) -> None:
        super().__init__(message)
        self.recent = recent
        """The backend accepted another item shortly before this refusal."""


async def judge(
    items: list[T],
    key: Callable[[T], str],
    send: Callable[[T, bool], Awaitable[None]],
    poison: Callable[[Refused, bool], Exception],
    refuses_everything: Callable[[], None],
    errors: tuple[type[Exception], ...],
) -> dict[str, Exception | None]:
    """Send each item once in order, judging refusals by the items around them; a verdict
    per `key(item)`: None when delivered, else the error for the item's `on_error`.

    `send(item, doubt)` returns once the backend accepted the item. With `doubt` True it
    raises `Refused` for a refusal that may be about the item; with `doubt` False it keeps
    the item until the backend takes it or it is judged. Any of `errors` it raises is that
    item's verdict. `poison(refused, proven)` makes the error for an item judged a poison
    pill, `proven` when refused right after another was accepted (else on `recent` alone);
    `refuses_everything()` is called once `LOOKAHEAD` more items were refused too."""
    verdicts: dict[str, Exception | None] = {}
    queue = deque(items)
    doubted: list[tuple[T, Refused]] = []
    asked_again: set[str] = set()  # refused once, sent again right after an acceptance
    # The last answer was an acceptance, or a poison pill asked again right after one.
    backend_works = False

    async def keep(item: T) -> Exception | None:
        try:
            await send(item, False)
        except errors as exc:
            return exc
        return None

    while queue or doubted:
        if doubted and (not queue or len(doubted) > LOOKAHEAD):
            if queue:
                refuses_everything()
            while not queue and doubted and doubted[0][1].recent:
                # Nothing left to try, and the backend took another item shortly before
                # refusing this one: the item is what it refuses.
                item, refused = doubted.pop(0)
                verdicts[key(item)] = poison(refused, False)
            if doubted:
                (first, _), rest = doubted[0], doubted[1:]
                verdicts[key(first)] = verdict = await keep(first)
                backend_works = verdict is None
                asked_again.update(key(item) for item, _ in rest)
                queue.extendleft(item for item, _ in reversed(rest))
            doubted = []
            continue
        item = queue.popleft()
        try:
            await send(item, True)
        except Refused as refused:
            if backend_works and key(item) in asked_again:
                verdicts[key(item)] = poison(refused, True)
            else:
                doubted.append((item, refused))
                backend_works = False
            continue
        except errors as exc:
            verdicts[key(item)] = exc
            backend_works = False
            continue
        verdicts[key(item)] = None
        backend_works = True
        # The backend takes items: ask about the refused ones again, right after it.
        asked_again.update(key(item) for item, _ in doubted)
        queue.extendleft(item for item, _ in reversed(doubted))
        doubted = []
    return verdicts
