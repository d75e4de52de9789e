"""A node's side of blob retention: which blobs its store must keep now (those packets not yet
delivered point at, `NodeContext.refs_held()`, plus the node's own not yet in an inbox), and
telling the operator, once per change, when the store is over its bytes only because of them.
Shared by `blob_store` and `events`."""

from __future__ import annotations

import threading
from collections.abc import Callable, Container, Iterable

from schnitzel import NodeContext
from schnitzel_plugins.vision.blobs import BlobStore

__all__ = ["EVERYTHING", "HeldBlobs"]


class _Everything:
    """Pins every blob (the runtime could not say which are held)."""

    def __contains__(self, uri: object) -> bool:
        return True


EVERYTHING: Container[str] = _Everything()


class HeldBlobs:
    """What a node's `BlobStore` must keep (`pinned`, its `pinned=` callable), and the one
    warning when that holds the store over its bound (`tell`)."""

    def __init__(
        self,
        context: NodeContext,
        own: Callable[[], Iterable[str]] = frozenset,
        *,
        blobs: str = "blobs",
        bound: str = "max_bytes",
        holders: str = "packets",
    ) -> None:
        """`own`: the blobs the node wrote whose packets are in no inbox yet. `blobs`,
        `bound` and `holders` name them in the event log (`snapshots over
        snapshot_max_bytes (N bytes): K are kept for events not yet delivered`)."""
        self.context = context
        self.own = own
        self.words = (blobs, bound, holders)
        self.unknown = 0
        """Collections that kept everything because the runtime did not answer."""
        self.said_over = False
        self._telling = threading.Lock()  # calls at once (blob_store) tell once between them

    def pinned(self) -> Container[str]:
        """What retention keeps now; everything when the run is stopping and cannot say."""
        try:
            return self.context.refs_held() | frozenset(self.own())
        except (TimeoutError, RuntimeError) as exc:
            self.unknown += 1
            why = exc or "no answer"
            self.context.report_trouble(f"retention of {self.words[0]} skipped: {why}")
            return EVERYTHING

    def tell(self, store: BlobStore) -> None:
        """Warn once when `store` is over its bound only because undelivered packets still
        point at its blobs (the backend is behind), and say once when that is over."""
        with self._telling:
            over = store.over_by_pinned
            if over == self.said_over:
                return
            self.said_over = over
        blobs, bound, holders = self.words
        if over:
            self.context.event(
                "warning",
                f"{blobs} over {bound} ({store.total_bytes} bytes): {store.kept_pinned} are "
                f"kept for {holders} not yet delivered; the backend is behind (see the sinks' "
                "backlog)",
            )
        else:
            self.context.event("info", f"{blobs} back within {bound}")
