"""A small JSON file in the state dir where a source keeps where to resume.

Written atomically (temporary file, fsync, rename, fsync of the directory): after a crash it
holds either the previous checkpoint or the new one, never half of one. A file that does not
parse is moved aside (`.corrupt-<UTC time>`) and the source starts over: duplicates, not loss.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from schnitzel.registry.plugin import NodeContext

__all__ = ["CheckpointFile"]


class CheckpointFile:
    """Where one source's resume position lives."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def for_node(cls, context: NodeContext, key: str) -> CheckpointFile:
        """The checkpoint of `context`'s node for `key` (for example the input file's
        absolute path), under `<state dir>/checkpoints/`."""
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        return cls(context.state_dir / "checkpoints" / f"{context.node_id}-{digest}.json")

    def of_other_nodes(self) -> list[Path]:
        """Checkpoints of the same key kept under other node ids (`<other id>-<digest>.json`,
        not moved aside): a node renamed in the graph left its own there."""
        digest = self.path.name.rsplit("-", 1)[-1]
        try:
            found = sorted(self.path.parent.glob(f"*-{digest}"))
        except OSError:
            return []
        return [path for path in found if path != self.path]

    def load(self) -> tuple[dict[str, Any] | None, str | None]:
        """The saved checkpoint (None if there is none) and a warning for the operator when
        one existed but could not be used."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            return None, f"cannot read checkpoint {str(self.path)!r} ({exc}): starting over"
        try:
            saved = json.loads(text)
            if not isinstance(saved, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            moved = self._quarantine()
            return None, (
                f"checkpoint {str(self.path)!r} is damaged ({exc}); moved to {moved!r}, "
                "starting over (lines may be delivered twice, none is lost)"
            )
        return saved, None

    def save(self, value: dict[str, Any]) -> None:
        """Replace the checkpoint atomically and durably."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        data = json.dumps(value, separators=(",", ":")).encode()
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def _quarantine(self) -> str:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        try:
            os.replace(self.path, target)
        except OSError:
            return str(self.path)
        return str(target)
