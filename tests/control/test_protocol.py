"""The wire protocol: strict decoding of requests (every bad one is a ProtocolError with the
reply's code, never another exception) and the encoding of replies."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schnitzel.control.protocol import (
    MAX_DEPTH,
    MAX_REQUEST_BYTES,
    ProtocolError,
    decode_reply,
    decode_request,
    encode_error,
    encode_reply,
    encode_request,
)


def test_a_minimal_request_is_just_a_command() -> None:
    request = decode_request(b'{"cmd": "hello"}')
    assert (request.cmd, request.id, request.args, request.why) == ("hello", None, {}, "")
    assert (request.client.via, request.client.ssh) == ("api", None)


def test_a_full_request_round_trips() -> None:
    line = encode_request(
        "throttle",
        {"node": "src", "rate_hz": 40.0},
        request_id=7,
        why="sink drowning",
        via="ctl",
        ssh="10.0.0.1 5000 10.0.0.2 22",
    )
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    request = decode_request(line)
    assert request.id == 7 and request.args == {"node": "src", "rate_hz": 40.0}
    assert request.why == "sink drowning" and request.client.via == "ctl"
    assert request.client.ssh == "10.0.0.1 5000 10.0.0.2 22"


@pytest.mark.parametrize(
    ("line", "says"),
    [
        (b"hello", "not JSON"),
        (b"", "not JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b'{"cmd": "status"', "not JSON"),
        (b"[1, 2]", "not an array"),
        (b'"status"', "not a string"),
        (b"null", "not null"),
        (b"3", "not a number"),
        (b'{"cmd": "throttle", "args": {"node": "src", "rate_hz": NaN}}', "NaN"),
        (b'{"cmd": "throttle", "args": {"rate_hz": Infinity}}', "Infinity"),
        (b'{"cmd": "throttle", "args": {"rate_hz": -Infinity}}', "-Infinity"),
        (b'{"cmd": "events", "args": {"after": ' + b"9" * 5000 + b"}}", "usable JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "nests too deeply"),
        (b'{"cmd": "status", "args": {"a": ' + b"[" * 40 + b"]" * 40 + b"}}", "deeper than"),
        (b'{"cmd": "status", "cmd": "stop"}', "appears twice"),
        (b'{"cmd": 5}', "cmd"),
        (b'{"cmd": ""}', "cmd"),
        (b'{"cmd": "status", "args": []}', "args"),
        (b'{"cmd": "status", "args": null}', "args"),
        (b'{"cmd": "status", "extra": 1}', "extra: unknown key"),
        (b'{"cmd": "status", "v": 2}', "v"),
        (b'{"cmd": "status", "id": true}', "id"),
        (b'{"cmd": "status", "id": 1.5}', "id"),
        (b'{"cmd": "status", "id": ' + str(1 << 64).encode() + b"}", "id"),
        (b'{"cmd": "status", "why": 3}', "why"),
        (b'{"cmd": "status", "client": {"via": "ctl", "uid": 0}}', "client.uid: unknown key"),
        (b'{"cmd": "status", "client": {"ssh": 22}}', "client.ssh"),
        (b'{"cmd": "status", "client": "ctl"}', "client"),
    ],
)
def test_a_bad_request_is_a_bad_request_error_that_says_what_is_wrong(
    line: bytes, says: str
) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_request(line)
    assert caught.value.code == "bad-request"
    assert says in caught.value.message


def test_an_oversized_line_is_too_large_before_it_is_parsed() -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_request(b"x" * (MAX_REQUEST_BYTES + 1))
    assert caught.value.code == "too-large"


def test_the_id_of_a_bad_request_is_echoed_when_it_is_usable() -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_request(b'{"id": "a-1", "cmd": 5}')
    assert caught.value.request_id == "a-1"
    with pytest.raises(ProtocolError) as caught:
        decode_request(json.dumps({"id": "x" * 65, "cmd": 5}).encode())
    assert caught.value.request_id is None


def test_nesting_up_to_the_limit_is_accepted() -> None:
    depth = MAX_DEPTH - 2  # the request object and its args are two levels
    inner = "[" * (depth - 1) + "]" * (depth - 1)
    request = decode_request(f'{{"cmd": "status", "args": {{"a": {inner}}}}}'.encode())
    assert request.cmd == "status"


def test_replies_are_one_line_and_decode_back() -> None:
    ok = encode_reply(3, {"text": "two\nlines", "nan": float("nan"), "inf": [float("inf")]})
    assert ok.count(b"\n") == 1
    reply = decode_reply(ok)
    assert reply["ok"] and reply["id"] == 3
    assert reply["result"] == {"text": "two\nlines", "nan": None, "inf": [None]}
    error = decode_reply(encode_error(None, "refused", "no node 'x'"))
    assert error == {
        "v": 1, "id": None, "ok": False, "error": {"code": "refused", "message": "no node 'x'"}
    }  # fmt: skip


def test_a_reply_with_tuple_keys_or_a_lone_surrogate_is_still_written() -> None:
    """A plugin's stats() keyed by tuples, a lone surrogate from a packet's text in an error:
    the reply says them plainly instead of failing (ctl status would fail while they last)."""
    result = {"plugin_stats": {("a", 1): 2, "n": float("nan")}, "error": "bad \ud800 text"}
    reply = decode_reply(encode_reply(4, result))
    assert reply["result"] == {
        "plugin_stats": {"('a', 1)": 2, "n": None},
        "error": "bad \\ud800 text",
    }


@pytest.mark.parametrize("line", [b"{}", b'{"ok": "yes"}', b'{"ok": false}', b"[]", b"nope"])
def test_a_reply_that_is_not_one_is_refused(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_reply(line)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise_anything_but_a_protocol_error(line: bytes) -> None:
    try:
        decode_request(line)
    except ProtocolError as exc:
        assert exc.code == "bad-request" and exc.message


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=30,
)


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["v", "id", "cmd", "args", "why", "client", "x"]), JSON))
def test_arbitrary_json_objects_decode_or_are_refused_cleanly(data: dict[str, Any]) -> None:
    line = json.dumps(data).encode()
    try:
        request = decode_request(line)
    except ProtocolError as exc:
        assert exc.code == "bad-request" and exc.message
    else:
        assert isinstance(request.cmd, str) and isinstance(request.args, dict)
