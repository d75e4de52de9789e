"""A directory of blobs (JPEG snapshots, crops) with retention: what `payload_ref`s point at.

No runtime import (only the packet contract's `PayloadRef`), so it is tested alone.

- **Content-addressed names.** A blob is stored as `<root>/<aa>/<sha256>.<ext>`, where `aa`
  is the first two hex digits of its SHA-256 and `ext` comes from a fixed table of content
  types. No part of a path comes from a packet or a config string, so no blob can land
  outside the store; `path_of(ref)` refuses a `payload_ref` whose file is not inside it.
  The same bytes stored twice are one file.
- **Atomic writes.** Bytes go to `<root>/.tmp/<random>`, optionally `fsync`ed, then are
  renamed into place: a reader (or a crash) sees the whole blob or none.
- **Retention.** Blobs older than `max_age_s` go first, then the oldest until the store is
  under `max_bytes`. `put` collects when the store goes over its bytes (and at most once a
  second for age); `collect()` does it on demand. The store keeps an index of what it holds,
  built from the directory when it opens, so collecting never walks the disk.
- **Pinned blobs stay.** With a `pinned` callable (the URIs still pointed at by packets not yet
  delivered, `NodeContext.refs_held()`), retention skips those blobs, however old, and goes
  on to the next oldest; `kept_pinned` counts what it skipped, and `over_by_pinned` says the
  store is over its bytes only because of them (the backend is behind). `pinned` is asked
  once per collection that has something to remove, outside the store's lock; a blob written
  while it answers is kept too. With `keep_writes` N, the blobs of the last N writes stay as
  well: a node whose calls run at once pins the blobs its current batch wrote this way
  (their packets are in no inbox yet, so `refs_held()` cannot name them).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Container
from pathlib import Path

from schnitzel import PayloadRef, SchnitzelError

__all__ = ["EXTENSIONS", "BlobStore", "BlobStoreError"]

EXTENSIONS: dict[str, str] = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "application/octet-stream": "bin",
    "application/json": "json",
}
"""Content types the store accepts, and the extension each is stored with."""


class BlobStoreError(SchnitzelError, ValueError):
    """A blob cannot be stored or found; the message names the blob and what to do."""


class BlobStore:
    """Blobs in one directory, bounded by bytes and age. Thread-safe."""

    def __init__(
        self,
        root: Path,
        max_bytes: int | None = None,
        max_age_s: float | None = None,
        fsync: bool = False,
        clock: Callable[[], float] = time.time,
        pinned: Callable[[], Container[str]] | None = None,
        keep_writes: int = 0,
    ) -> None:
        self.root = root.resolve()
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.fsync = fsync
        self.clock = clock
        self.pinned = pinned
        """The URIs retention must keep now (asked once per collection), or None."""
        self.keep_writes = keep_writes
        """Retention keeps the blobs of this many of the latest writes (0: none)."""
        self.removed = 0
        """Blobs deleted by retention since the store opened."""
        self.kept_pinned = 0
        """Blobs the last collection kept although retention would have removed them:
        packets not yet delivered point at them."""
        self.over_by_pinned = False
        """The last collection left the store over `max_bytes` only because of pinned blobs."""
        self._lock = threading.Lock()
        self._index: OrderedDict[Path, tuple[float, int, int]] = OrderedDict()
        """Blob path -> (time written, size, write number), oldest first."""
        self._writes = 0
        """Blobs written (or rewritten) so far: the write number of the newest."""
        self.total_bytes = 0
        self._last_age_check = 0.0
        (self.root / ".tmp").mkdir(parents=True, exist_ok=True)
        self._scan()

    def _scan(self) -> None:
        found = []
        for path in self.root.glob("??/*.*"):
            try:
                info = path.stat()
            except FileNotFoundError:
                continue
            found.append((info.st_mtime, path, info.st_size))
        for mtime, path, size in sorted(found):
            self._index[path] = (mtime, size, 0)
            self.total_bytes += size
        for leftover in (self.root / ".tmp").iterdir():  # writes a crash cut short
            leftover.unlink(missing_ok=True)

    def put(self, data: bytes, content_type: str) -> PayloadRef:
        """Store `data`; its `payload_ref` (a `file://` URI, content type, size, sha256)."""
        ext = EXTENSIONS.get(content_type)
        if ext is None:
            raise BlobStoreError(
                f"content type {content_type!r} is not one the blob store keeps; use one of "
                f"{', '.join(EXTENSIONS)}"
            )
        digest = hashlib.sha256(data).hexdigest()
        final = self.root / digest[:2] / f"{digest}.{ext}"
        now = self.clock()
        with self._lock:
            self._writes += 1
            if final in self._index and final.exists():  # the same bytes: one file, now newest
                self._index.move_to_end(final)
                self._index[final] = (now, len(data), self._writes)
                os.utime(final, (now, now))
            else:  # new, or removed behind the store's back: write it (again)
                self.total_bytes -= self._index.pop(final, (0.0, 0, 0))[1]
                self._write(final, data)
                self._index[final] = (now, len(data), self._writes)
                self.total_bytes += len(data)
            due = self._due(now)
        if due:
            self._collect_now(now)
        return PayloadRef(final.as_uri(), content_type, len(data), digest)

    def _write(self, final: Path, data: bytes) -> None:
        temporary = self.root / ".tmp" / secrets.token_hex(8)
        with open(temporary, "wb") as out:
            out.write(data)
            if self.fsync:
                out.flush()
                os.fsync(out.fileno())
        final.parent.mkdir(exist_ok=True)
        os.replace(temporary, final)

    def path_of(self, ref: PayloadRef) -> Path:
        """The file a `payload_ref` of this store names; refuses one outside the store."""
        if not ref.uri.startswith("file://"):
            raise BlobStoreError(f"payload_ref {ref.uri!r} is not a file of this blob store")
        path = Path(ref.uri[len("file://") :]).resolve()
        if not path.is_relative_to(self.root) or path.parent.parent != self.root:
            raise BlobStoreError(
                f"payload_ref {ref.uri!r} points outside the blob store at {self.root}"
            )
        return path

    def read(self, ref: PayloadRef) -> bytes:
        """The blob's bytes, checked against the ref's size and sha256."""
        path = self.path_of(ref)
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise BlobStoreError(
                f"blob {path.name} is gone (retention removed it, or it was never here)"
            ) from exc
        if len(data) != ref.size or hashlib.sha256(data).hexdigest() != ref.sha256:
            raise BlobStoreError(f"blob {path.name} does not match its payload_ref (damaged)")
        return data

    def collect(self) -> int:
        """Apply retention now; the number of blobs removed."""
        return self._collect_now(self.clock())

    def _due(self, now: float) -> bool:
        over = self.max_bytes is not None and self.total_bytes > self.max_bytes
        return over or (self.max_age_s is not None and now - self._last_age_check >= 1.0)

    def _collect_now(self, now: float) -> int:
        with self._lock:
            if self.pinned is None or not self._doomed(now, ()):
                return self._collect(now, (), self._writes)
            upto = self._writes
        pinned = self.pinned()  # outside the lock: it may wait for the runtime
        with self._lock:
            return self._collect(now, pinned, upto)

    def _doomed(self, now: float, pinned: Container[str], upto: int = 1 << 62) -> list[Path]:
        """The blobs retention removes now, oldest first: too old, or the oldest while the
        store is over its bytes; never one in `pinned`, written after write `upto` or in the
        last `keep_writes` writes, nor the newest blob for its size alone. Counts what it
        kept (`kept_pinned`)."""
        doomed: list[Path] = []
        kept = 0
        size_left = self.total_bytes
        newest = next(reversed(self._index), None)
        recent = min(upto, max(0, self._writes - self.keep_writes))  # 0: found at open
        for path, (written, size, number) in self._index.items():
            too_old = self.max_age_s is not None and now - written > self.max_age_s
            too_big = self.max_bytes is not None and size_left > self.max_bytes
            if not (too_old or too_big) or (path == newest and not too_old):
                break  # the newest blob stays even when it alone is over the bytes
            if number > recent or path.as_uri() in pinned:
                kept += 1
                continue
            doomed.append(path)
            size_left -= size
        self.kept_pinned = kept
        return doomed

    def _collect(self, now: float, pinned: Container[str], upto: int) -> int:
        self._last_age_check = now
        doomed = self._doomed(now, pinned, upto)
        for path in doomed:
            _written, size, _number = self._index.pop(path)
            path.unlink(missing_ok=True)
            self.total_bytes -= size
        self.removed += len(doomed)
        self.over_by_pinned = bool(
            self.kept_pinned and self.max_bytes is not None and self.total_bytes > self.max_bytes
        )
        return len(doomed)

    def __len__(self) -> int:
        with self._lock:
            return len(self._index)
