"""Whether a control socket may be trusted: one set of checks for the runtime that serves it
and for the clients (`schnitzel ctl`, `schnitzel-tui --attach`) that talk to it.

The threat: with no `$XDG_RUNTIME_DIR` and a long state dir, sockets go to
`/tmp/schnitzel-<uid>/`, and another local user can create that directory first and serve a
fake runtime there. The runtime refuses such a directory; a client must refuse it too, before
it sends anything (a `stop --why maintenance` told "stopping..." by a fake is worse than an
error). Who may be trusted is this user and root; a client run as root (steering a service
that runs as its own user) trusts the user the socket belongs to.

    directory_problem(path.parent)    the socket's directory: ours (or root's), not writable
                                      by everyone, and `/tmp/schnitzel-<uid>` is <uid>'s
    socket_problem(path)              the socket file: a socket, ours, mode 0600
    peer_problem(uid, owner)          the process that accepted: ours (SO_PEERCRED)

Each returns None when all is well, else what is wrong, in words for the operator.
"""

from __future__ import annotations

import os
import re
import socket
import stat
import struct
from pathlib import Path

__all__ = [
    "directory_problem",
    "peer_credentials",
    "peer_problem",
    "socket_owner",
    "socket_problem",
]

_UID_DIR = re.compile(r"schnitzel-(\d+)")


def directory_problem(directory: Path) -> str | None:
    """What makes `directory` unsafe to hold a control socket, or None."""
    try:
        info = os.stat(directory)
    except FileNotFoundError:
        return None  # nothing there to trust or distrust: connecting fails on its own
    except OSError as exc:
        return f"{directory} cannot be checked: {exc.strerror}"
    if not stat.S_ISDIR(info.st_mode):
        return f"{directory} is not a directory"
    me = os.geteuid()
    named = _UID_DIR.fullmatch(directory.name)
    if named and directory.parent == Path("/tmp") and info.st_uid != int(named.group(1)):
        return (
            f"{directory} belongs to uid {info.st_uid}, not to uid {named.group(1)} it is "
            "named for (planted by another user?)"
        )
    if me != 0 and info.st_uid not in (me, 0):
        return f"{directory} belongs to uid {info.st_uid}, not to this user ({me}) or root"
    mode = stat.S_IMODE(info.st_mode)
    if mode & stat.S_IWOTH and not mode & stat.S_ISVTX:
        return f"{directory} can be written by any user (mode {mode:o}); make it 0700"
    return None


def socket_problem(path: Path) -> str | None:
    """What makes the socket file at `path` unsafe to talk to, or None (also when there is
    no file: connecting says so)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"{path} cannot be checked: {exc.strerror}"
    if not stat.S_ISSOCK(info.st_mode):
        return f"{path} is not a socket"
    me = os.geteuid()
    if me != 0 and info.st_uid not in (me, 0):
        return f"{path} belongs to uid {info.st_uid}, not to this user ({me}) or root"
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        return f"{path} has mode {mode:o}; a runtime's control socket is 0600"
    return None


def socket_owner(path: Path) -> int | None:
    """The uid the socket file belongs to, or None when it cannot be read."""
    try:
        return os.lstat(path).st_uid
    except OSError:
        return None


def peer_problem(peer_uid: int | None, owner: int | None) -> str | None:
    """What is wrong with the process that accepted the connection, or None. `peer_uid`
    is the kernel's word (None where SO_PEERCRED does not exist); `owner` is the socket
    file's owner."""
    if peer_uid is None:
        return None
    me = os.geteuid()
    trusted = {me, 0} if me != 0 else {0, owner}
    if peer_uid not in trusted:
        whom = "this user" if me != 0 else "the socket's owner"
        return (
            f"the process serving it runs as uid {peer_uid}, not as {whom} "
            f"({me if me != 0 else owner}) or root"
        )
    return None


def peer_credentials(sock: socket.socket) -> tuple[int | None, int | None]:
    """(uid, pid) of the process at the other end of a connected unix socket, as the kernel
    reports them; (None, None) where it cannot tell."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None, None
    try:
        data = sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    except OSError:
        return None, None
    pid, uid, _gid = struct.unpack("3i", data)
    return uid, pid
