"""Parsing client frames (DESIGN §5): every bad input gets a stable error code."""

from __future__ import annotations

import json

import pytest

from ytmaker_gateway.protocol import (
    ClientMessage,
    ProtocolError,
    parse_client_message,
    update_message,
)
from ytmaker_gateway.testing import make_update


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ('{"action":"subscribe","task_id":"t1","since":null}', ClientMessage("subscribe", "t1")),
        (
            '{"action":"subscribe","task_id":"t1","since":7,"epoch":"E"}',
            ClientMessage("subscribe", "t1", 7, "E"),
        ),
        ('{"action":"subscribe","task_id":"t1","since":-1}', ClientMessage("subscribe", "t1", -1)),
        ('{"action":"unsubscribe","task_id":"t1"}', ClientMessage("unsubscribe", "t1")),
        (
            '{"action":"cancel","task_id":"t1","reason":"oops"}',
            ClientMessage("cancel", "t1", reason="oops"),
        ),
        ('{"action":"pause","task_id":"t1"}', ClientMessage("pause", "t1")),
        ('{"action":"resume","task_id":"t1"}', ClientMessage("resume", "t1")),
        ('{"type":"ping"}', ClientMessage("ping")),
        ('{"action":"pong"}', ClientMessage("pong")),
        (b'{"type":"ping"}', ClientMessage("ping")),
    ],
)
def test_valid_messages(frame: str, expected: ClientMessage) -> None:
    assert parse_client_message(frame) == expected


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        ("[1,2]", "invalid_message"),
        ('"subscribe"', "invalid_message"),
        ("{}", "missing_field"),
        ('{"action":"dance"}', "unknown_action"),
        ('{"action":42}', "unknown_action"),
        ('{"action":"subscribe"}', "missing_field"),
        ('{"action":"subscribe","task_id":""}', "missing_field"),
        ('{"action":"subscribe","task_id":5}', "invalid_field"),
        ('{"action":"subscribe","task_id":"' + "x" * 65 + '"}', "invalid_field"),
        ('{"action":"subscribe","task_id":"t","since":"3"}', "invalid_field"),
        ('{"action":"subscribe","task_id":"t","since":1.5}', "invalid_field"),
        ('{"action":"subscribe","task_id":"t","since":true}', "invalid_field"),
        ('{"action":"subscribe","task_id":"t","since":-2}', "invalid_field"),
        ('{"action":"subscribe","task_id":"t","epoch":7}', "invalid_field"),
        ('{"action":"cancel","task_id":"t","reason":["x"]}', "invalid_field"),
    ],
)
def test_bad_messages(frame: str | bytes, code: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_client_message(frame)
    assert caught.value.code == code
    assert caught.value.message


def test_an_update_message_carries_type_task_offset_and_the_state() -> None:
    update = make_update("t1", progress=12.5, n=3)
    sent = json.loads(update_message(update, 42, "EPOCH"))
    assert sent["type"] == "progress" and sent["task_id"] == "t1" and sent["offset"] == 42
    payload = sent["payload"]
    assert payload["offset"] == 42 and payload["epoch"] == "EPOCH"
    assert payload["progress"] == 12.5 and payload["event_id"] == "t1-e3"
    assert payload["stages"] == {} and payload["status"] == "running"
