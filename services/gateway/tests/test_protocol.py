"""Parsing client frames (docs/protocol.md "Client messages"): every bad input gets a stable error
code."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.gateway import make_update, stable_id
from ytmaker_gateway.rules.ids import MAX_OFFSET
from ytmaker_gateway.rules.position import StreamPosition
from ytmaker_gateway.rules.protocol import (
    ClientMessage,
    ProtocolError,
    message,
    parse_client_message,
    update_message,
    update_payload,
)

T1 = stable_id("t1")


def _frame(**fields: object) -> str:
    return json.dumps(fields)


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (_frame(action="subscribe", task_id=T1, since=None), ClientMessage("subscribe", T1)),
        (
            _frame(action="subscribe", task_id=T1, since=7, epoch="E"),
            ClientMessage("subscribe", T1, StreamPosition(7, "E")),
        ),
        (
            _frame(action="subscribe", task_id=T1, since=-1),
            ClientMessage("subscribe", T1, StreamPosition(-1)),
        ),
        (
            _frame(action="subscribe", task_id=T1, since=MAX_OFFSET),
            ClientMessage("subscribe", T1, StreamPosition(MAX_OFFSET)),
        ),
        (_frame(action="unsubscribe", task_id=T1), ClientMessage("unsubscribe", T1)),
        (
            _frame(action="cancel", task_id=T1, reason="oops"),
            ClientMessage("cancel", T1, reason="oops"),
        ),
        (_frame(action="pause", task_id=T1), ClientMessage("pause", T1)),
        (_frame(action="resume", task_id=T1), ClientMessage("resume", T1)),
        ('{"type":"ping"}', ClientMessage("ping")),
        ('{"action":"pong"}', ClientMessage("pong")),
        ('{"action":"pong","timestamp":null}', ClientMessage("pong")),
        (
            '{"action":"pong","timestamp":1764876543.123456}',
            ClientMessage("pong", timestamp=1764876543.123456),
        ),
        ('{"action":"pong","timestamp":1764876543}', ClientMessage("pong", timestamp=1764876543)),
    ],
)
def test_valid_messages(frame: str, expected: ClientMessage) -> None:
    assert parse_client_message(frame) == expected


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "invalid_json"),
        (b"\xff\xfe", "invalid_frame"),
        (b'{"type":"ping"}', "invalid_frame"),  # JSON, but in a binary frame
        ("[1,2]", "invalid_message"),
        ('"subscribe"', "invalid_message"),
        ("{}", "missing_field"),
        ('{"action":"dance"}', "unknown_action"),
        ('{"action":42}', "unknown_action"),
        ('{"action":"subscribe"}', "missing_field"),
        ('{"action":"subscribe","task_id":""}', "missing_field"),
        ('{"action":"subscribe","task_id":5}', "invalid_field"),
        ('{"action":"subscribe","task_id":"' + "x" * 65 + '"}', "invalid_field"),
        ('{"action":"subscribe","task_id":"t1"}', "invalid_field"),  # not an id we issue
        (_frame(action="subscribe", task_id=T1.upper()), "invalid_field"),
        (_frame(action="subscribe", task_id=f"{T1}/../../internal"), "invalid_field"),
        (_frame(action="subscribe", task_id=T1, since="3"), "invalid_field"),
        (_frame(action="subscribe", task_id=T1, since=1.5), "invalid_field"),
        (_frame(action="subscribe", task_id=T1, since=True), "invalid_field"),
        (_frame(action="subscribe", task_id=T1, since=-2), "invalid_field"),
        (_frame(action="subscribe", task_id=T1, since=MAX_OFFSET + 1), "invalid_field"),
        (_frame(action="subscribe", task_id=T1, epoch=7), "invalid_field"),
        (_frame(action="subscribe", task_id=T1, colour="red"), "invalid_field"),  # unknown
        (_frame(action="ping", task_id=T1), "invalid_field"),
        (_frame(action="ping", timestamp=1.5), "invalid_field"),  # a pong's field only
        (_frame(action="pong", timestamp="1764876543.1"), "invalid_field"),
        (_frame(action="pong", timestamp=True), "invalid_field"),
        (_frame(action="pong", timestamp=[1.5]), "invalid_field"),
        (_frame(action="cancel", task_id=T1, reason=["x"]), "invalid_field"),
        # Numbers of any size, any nesting: an error, never a crash of the reader.
        (
            '{"action":"subscribe","task_id":"' + T1 + '","since":' + "9" * 5000 + "}",
            "invalid_json",
        ),
        ('{"action":"subscribe","task_id":"' + T1 + '","since":1e400}', "invalid_json"),
        ('{"action":"subscribe","since":' + "[" * 5000 + "]" * 5000 + "}", "invalid_json"),
        ("[" * 100_000, "invalid_json"),
        (
            '{"action":"subscribe","task_id":"' + T1 + '","since":18446744073709551616}',
            "invalid_field",
        ),
    ],
)
def test_bad_messages(frame: str | bytes, code: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_client_message(frame)
    assert caught.value.code == code
    assert caught.value.message and len(caught.value.message) < 300


def test_an_update_message_carries_type_task_offset_and_the_state() -> None:
    update = make_update(T1, progress=12.5, n=3)
    sent = json.loads(update_message(update, 42, "EPOCH"))
    assert sent["type"] == "progress" and sent["task_id"] == T1 and sent["offset"] == 42
    payload = sent["payload"]
    assert payload["offset"] == 42 and payload["epoch"] == "EPOCH"
    assert payload["progress"] == 12.5 and payload["event_id"] == f"{T1}-e3"
    assert payload["stages"] == {} and payload["status"] == "running"


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"error": {"code": "boom", "message": 'quotes " and \\ and ünïcode', "details": {"n": 1}}},
        {"result": {"video_uri": "file:///x.mp4", "nested": [1, 2.5, None, True]}},
        {"eta_seconds": 12.25, "current_step": "step 3", "total_steps": 9},
    ],
)
def test_an_update_message_is_the_update_payload_written_in_one_pass(
    fields: dict[str, Any],
) -> None:
    update = make_update(T1, progress=33.3, n=7, **fields)
    fast = json.loads(update_message(update, 9, None))
    slow = json.loads(message(str(update.type), update_payload(update, 9, None), T1, 9))
    assert fast == slow
