"""The pydantic models of a control request, used where requests are decoded (the server).

Kept apart from `protocol.py` so that a client (`schnitzel ctl`) encodes requests and reads
replies without importing pydantic; `protocol.decode_request` imports this module.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = ["ClientInfo", "Request", "RequestId"]

RequestId = (
    Annotated[int, Field(ge=-(1 << 63), lt=1 << 63)]
    | Annotated[str, StringConstraints(max_length=64)]
    | None
)


class _Strict(BaseModel):
    # defer_build: built at the first request a run serves, not while it starts
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)


class ClientInfo(_Strict):
    """What a client says about itself. Recorded as declared: only the uid and pid of a
    socket client are the kernel's word."""

    via: Annotated[str, StringConstraints(max_length=32)] = "api"
    """ctl or attach; anything else is recorded as api."""
    ssh: Annotated[str, StringConstraints(max_length=256)] | None = None
    """The client's $SSH_CONNECTION."""


class Request(_Strict):
    """One command for the runtime."""

    v: Literal[1] = 1
    id: RequestId = None
    cmd: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    args: dict[str, Any] = Field(default_factory=dict)
    why: Annotated[str, StringConstraints(max_length=4096)] = ""
    client: ClientInfo = Field(default_factory=ClientInfo)
