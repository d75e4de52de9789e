"""Who asked for a change: written into the audit log with every change."""

from __future__ import annotations

import os
import pwd
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Actor", "user_name"]


@dataclass(frozen=True)
class Actor:
    """The person or part of schnitzel behind a control command."""

    user: str
    """The OS user name (for a socket client: of the uid the kernel reports)."""
    uid: int | None
    pid: int | None
    ssh: str | None
    """$SSH_CONNECTION of the client, where it has one (as the client declared it)."""
    via: str
    """How the command came: ctl, console, attach, controller, reload, api."""

    @classmethod
    def local(cls, via: str) -> Actor:
        """This process, on behalf of whoever runs it."""
        uid = os.geteuid()
        return cls(user_name(uid), uid, os.getpid(), os.environ.get("SSH_CONNECTION"), via)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        where = f" over ssh from {self.ssh.split()[0]}" if self.ssh else ""
        return f"{self.user} via {self.via}{where}"


def user_name(uid: int) -> str:
    """The login name of `uid`, or `uid <n>` when the system has no entry for it."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"
