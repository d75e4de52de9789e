"""The control socket's wire protocol: one JSON object per line, UTF-8, each way.

    request  {"v": 1, "id": 7, "cmd": "throttle", "args": {"node": "src", "rate_hz": 40.0},
              "why": "sink is drowning", "client": {"via": "ctl", "ssh": null}}
    reply    {"v": 1, "id": 7, "ok": true, "result": {...}}
             {"v": 1, "id": 7, "ok": false, "error": {"code": "refused", "message": "..."}}

Everything but `cmd` may be left out. A request is at most `MAX_REQUEST_BYTES` long (newline
included). Decoding is strict: anything that is not one JSON object of the right shape is a
`ProtocolError` carrying the error code of the reply, never another exception. Error codes:

- `bad-request`: not UTF-8, not JSON (NaN and Infinity included), not an object, nested too
  deeply, a number too large, wrong types, unknown keys, repeated keys;
- `too-large`: a line over `MAX_REQUEST_BYTES` (the server then closes the connection: where
  the next request starts is lost);
- `unknown-command`, `refused` (the runtime said no: `ControlError`), `busy` (too many
  connections, a slow command still running), `internal` (a bug, logged with its traceback).
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from pydantic import ValidationError

    from schnitzel.control.request import ClientInfo, Request, RequestId

from schnitzel.errors import SchnitzelError

__all__ = [
    "MAX_DEPTH",
    "MAX_REQUEST_BYTES",
    "PROTOCOL_VERSION",
    "ClientInfo",
    "ErrorCode",
    "ProtocolError",
    "Request",
    "RequestId",
    "decode_reply",
    "decode_request",
    "describe_validation_error",
    "encode_error",
    "encode_reply",
    "encode_request",
]

PROTOCOL_VERSION = 1
MAX_REQUEST_BYTES = 1 << 20
"""The longest request line, newline included."""
MAX_DEPTH = 32
"""How deeply objects and arrays may nest in a request (a swap's config is the deepest)."""

ErrorCode = Literal["bad-request", "too-large", "unknown-command", "refused", "busy", "internal"]


class ProtocolError(SchnitzelError):
    """A request that cannot be served as sent; `code` and `message` go into the reply."""

    def __init__(self, code: ErrorCode, message: str, request_id: RequestId = None) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message
        self.request_id = request_id


def encode_request(
    cmd: str,
    args: dict[str, Any] | None = None,
    *,
    request_id: int | str | None = None,
    why: str = "",
    via: str = "api",
    ssh: str | None = None,
) -> bytes:
    """One request line (what a client sends)."""
    message: dict[str, Any] = {"v": PROTOCOL_VERSION, "id": request_id, "cmd": cmd}
    message["args"] = args or {}
    if why:
        message["why"] = why
    message["client"] = {"via": via, "ssh": ssh}
    return _line(message)


def decode_request(line: bytes) -> Request:
    """The request in one line (with or without its newline); ProtocolError otherwise."""
    if len(line) > MAX_REQUEST_BYTES:
        raise ProtocolError(
            "too-large", f"the request is over {MAX_REQUEST_BYTES} bytes; send smaller ones"
        )
    # pydantic only where requests are decoded (the server): `schnitzel ctl` never loads it
    from pydantic import ValidationError

    from schnitzel.control.request import Request

    data = _parse(line)
    if not isinstance(data, dict):
        raise ProtocolError("bad-request", f"a request is a JSON object, not {_json_type(data)}")
    request_id = _usable_id(data.get("id"))
    _check_depth(data, request_id)
    try:
        return Request.model_validate(data)
    except ValidationError as exc:
        raise ProtocolError("bad-request", describe_validation_error(exc), request_id) from None


def encode_reply(request_id: RequestId, result: Any) -> bytes:
    """A success reply line."""
    return _line({"v": PROTOCOL_VERSION, "id": request_id, "ok": True, "result": result})


def encode_error(request_id: RequestId, code: ErrorCode, message: str) -> bytes:
    """An error reply line."""
    error = {"code": code, "message": message}
    return _line({"v": PROTOCOL_VERSION, "id": request_id, "ok": False, "error": error})


def decode_reply(line: bytes) -> dict[str, Any]:
    """A reply line as sent by the server: `ok` and `result`, or `ok` false and `error` with
    `code` and `message`. ProtocolError when the line is not a reply (a client talking to
    something else than a schnitzel runtime)."""
    data = _parse(line, strict=False)
    if not (isinstance(data, dict) and isinstance(data.get("ok"), bool)):
        raise ProtocolError("bad-request", "the reply is not a schnitzel control reply")
    if not data["ok"]:
        error = data.get("error")
        if not (
            isinstance(error, dict)
            and isinstance(error.get("code"), str)
            and isinstance(error.get("message"), str)
        ):
            raise ProtocolError("bad-request", "the error reply has no code and message")
    return data


def describe_validation_error(exc: ValidationError) -> str:
    """Pydantic's errors as one line an operator can act on: where, and what is wrong."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in error["loc"]) or "the request"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def _parse(line: bytes, strict: bool = True) -> Any:
    """`strict`: refuse repeated keys too (requests come from anyone; replies from our own
    runtime, where the check would only cost time on every poll)."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(
            "bad-request", f"the request is not UTF-8 text ({exc.reason})"
        ) from None
    try:
        if not strict:
            return json.loads(text, parse_constant=_reject_constant)
        return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise ProtocolError("bad-request", "the request nests too deeply") from None
    except json.JSONDecodeError as exc:
        raise ProtocolError(
            "bad-request", f"the request is not JSON: {exc.msg} at column {exc.colno}"
        ) from None
    except ValueError as exc:  # a number too long to convert, NaN, a repeated key
        raise ProtocolError("bad-request", f"the request is not usable JSON: {exc}") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows; send a finite number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise ValueError(f"the key {key!r} appears twice in one object")
        data[key] = value
    return data


def _check_depth(data: Any, request_id: RequestId) -> None:
    """Refuse nesting deeper than MAX_DEPTH (iteratively: no recursion on hostile input)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ProtocolError(
                "bad-request", f"the request nests deeper than {MAX_DEPTH} levels", request_id
            )
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def _usable_id(value: Any) -> RequestId:
    """The request's id when it is one a reply can carry back, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and abs(value) < 1 << 63:
        return value
    if isinstance(value, str) and len(value) <= 64:
        return value
    return None


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def _line(message: dict[str, Any]) -> bytes:
    try:
        text = json.dumps(message, ensure_ascii=False, allow_nan=False, default=str)
        return (text + "\n").encode("utf-8")
    except (ValueError, TypeError):
        # A NaN or infinity in a result (JSON has no word for it), a key that is not a string
        # (a plugin's stats() keyed by tuples), a lone surrogate from a packet's text (UTF-8
        # cannot hold it; a UnicodeEncodeError is a ValueError): written plainly instead of
        # failing the reply, so `ctl status` and an attached console never fail for them.
        text = json.dumps(_plain(message), ensure_ascii=False, allow_nan=False, default=str)
        return (text + "\n").encode("utf-8")


def _plain(value: Any) -> Any:
    """`value` with every NaN and infinity replaced by None, every key made a string and
    every lone surrogate written as its escape (`\\ud800`, as text)."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {_plain(k if isinstance(k, str) else str(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


_MODELS = ("ClientInfo", "Request", "RequestId")


def __getattr__(name: str) -> Any:
    """The request models, from `schnitzel.control.request` on first use (they need pydantic,
    which a client never loads)."""
    if name in _MODELS:
        from schnitzel.control import request

        return getattr(request, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
