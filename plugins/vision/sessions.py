"""One onnxruntime session per model file, shared by every node that uses it.

Loading a model costs memory and time; two `detect` nodes on the same file (two cameras, a
fan-out) share one session. `InferenceSession.run` may be called from several threads at
once, so a session serves every node's thread pool. The last node to let go closes it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["SessionKey", "acquire", "release", "sessions_open"]


@dataclass(frozen=True, slots=True)
class SessionKey:
    """What makes two sessions interchangeable: the same file with the same options."""

    path: str
    providers: tuple[str, ...]
    intra_op_threads: int | None


@dataclass(slots=True)
class _Entry:
    session: Any
    users: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


_sessions: dict[SessionKey, _Entry] = {}
_guard = threading.Lock()


def _key(path: Path, providers: tuple[str, ...], intra_op_threads: int | None) -> SessionKey:
    return SessionKey(str(path.resolve()), providers, intra_op_threads)


def acquire(path: Path, providers: tuple[str, ...], intra_op_threads: int | None) -> Any:
    """The shared session for this model and options; created on first use."""
    import onnxruntime as ort  # the vision extra; imported when a node opens

    key = _key(path, providers, intra_op_threads)
    with _guard:
        entry = _sessions.get(key)
        if entry is None:
            options = ort.SessionOptions()
            if intra_op_threads is not None:
                options.intra_op_num_threads = intra_op_threads
            session = ort.InferenceSession(key.path, options, providers=list(providers))
            entry = _sessions[key] = _Entry(session)
        entry.users += 1
        return entry.session


def release(path: Path, providers: tuple[str, ...], intra_op_threads: int | None) -> None:
    """One user fewer; the session is dropped when none is left."""
    key = _key(path, providers, intra_op_threads)
    with _guard:
        entry = _sessions.get(key)
        if entry is None:
            return
        entry.users -= 1
        if entry.users <= 0:
            del _sessions[key]


def sessions_open() -> int:
    """Sessions held now (for tests and health)."""
    with _guard:
        return len(_sessions)
