"""`--metrics-textfile PATH`: the Prometheus metrics written to a file every few seconds, for
node_exporter's textfile collector on boxes that open no port.

The same metric families as `/metrics` (`SnapshotCollector`), from one snapshot taken on the
run's event loop; the file is written by prometheus-client's `write_to_textfile`, which
writes a temporary file beside it and renames it over, so node_exporter never reads half a
file. Written once at start (so a path that cannot be written stops the run before it
starts), every `interval_s` while the run lasts, and once more at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client.exposition import write_to_textfile
from prometheus_client.registry import CollectorRegistry

from schnitzel.observe.metrics_addr import MetricsAddrError
from schnitzel.observe.prometheus import SnapshotCollector

__all__ = ["MetricsTextfile", "MetricsTextfileError"]


class MetricsTextfileError(MetricsAddrError):
    """`--metrics-textfile` names a file that cannot be written (or is not a `.prom` file)."""


class MetricsTextfile:
    """Writes the run's metrics to `path` every `interval_s`, atomically."""

    def __init__(
        self,
        path: str | Path,
        snapshot: Callable[[], dict[str, Any]],
        version: str,
        interval_s: float,
        logger: logging.Logger,
    ) -> None:
        self.path = Path(path)
        if self.path.suffix != ".prom":
            raise MetricsTextfileError(
                f"--metrics-textfile {str(path)!r}: node_exporter's textfile collector reads "
                "only files ending in .prom; name it like /var/lib/node_exporter/schnitzel.prom"
            )
        self.interval_s = interval_s
        self.writes = 0
        """Files written so far."""
        self._snapshot = snapshot
        self._logger = logger
        self._taken: Any = {}  # a RunReport once the first snapshot is taken
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(SnapshotCollector(lambda: self._taken, version))
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Write the file once (raising `MetricsTextfileError` when it cannot be written),
        then again every `interval_s` on the running event loop."""
        self.write()
        self._task = asyncio.get_running_loop().create_task(self._every_interval())

    def write(self) -> None:
        """Take a snapshot and write the file now (on the event loop: the snapshot is
        consistent, and the file is small)."""
        self._taken = self._snapshot()
        try:
            write_to_textfile(str(self.path), self._registry)
        except OSError as exc:
            raise MetricsTextfileError(
                f"cannot write metrics to {self.path}: {exc.strerror or exc}; make its "
                "directory exist and writable, or choose another --metrics-textfile"
            ) from exc
        self.writes += 1

    def close(self) -> None:
        """Stop writing; write the final figures of the run."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        with contextlib.suppress(MetricsTextfileError):  # the last figures are a bonus
            self.write()

    async def _every_interval(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                self.write()
            except MetricsTextfileError as exc:  # a full disk for a while: tried again next
                self._logger.warning("%s", exc)
