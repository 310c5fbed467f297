"""The SDK's pure protocol pieces: backoff, heartbeat, the cursor, message parsing."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from ytmaker_client.protocol import (
    LONGEST_CLIENT_ID,
    SLOWEST_SUBSCRIPTION_FRAMES_PER_SECOND,
    SUBSCRIPTION_FRAMES_PER_SECOND,
    Backoff,
    Cursor,
    Liveness,
    ProtocolViolation,
    ServerMessage,
    client_id,
    parse,
    pong_frame,
    restored_tasks,
    subscription_frames_per_second,
    to_update,
)

from .fake_gateway import update


def test_backoff_doubles_to_the_cap_with_jitter() -> None:
    backoff = Backoff(rng=random.Random(7))
    for attempt, nominal in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 16), (6, 30), (12, 30)]:
        delays = [backoff.delay(attempt) for _ in range(200)]
        assert all(nominal * 0.5 <= d <= nominal for d in delays)
        assert max(delays) - min(delays) > nominal * 0.3  # jitter really spreads them
    assert not Backoff().exhausted(10**6)
    limited = Backoff(max_attempts=3)
    assert not limited.exhausted(3) and limited.exhausted(4)
    with pytest.raises(ValueError):
        Backoff(cap=0.5)
    with pytest.raises(ValueError):
        Backoff(max_attempts=0)


def test_liveness() -> None:
    beat = Liveness(interval=10, timeout=25)
    beat.start(100.0)
    assert not beat.ping_due(105) and beat.ping_due(110)
    beat.sent(110)
    assert not beat.dead(124) and beat.dead(126)
    beat.received(120)
    assert not beat.dead(140)
    assert beat.next_check(115) == pytest.approx(5)  # the next ping is due at 120
    with pytest.raises(ValueError):
        Liveness(interval=10, timeout=10)


def test_cursor_resumes_from_the_last_offset_and_drops_repeats() -> None:
    cursor = Cursor(since=-1)
    assert cursor.request() == (-1, None)
    cursor.subscribed({"epoch": "E1", "recovered": True})
    first = to_update(parse_msg(update("t", 4, 10)))
    assert cursor.accept(first) and not cursor.accept(first)
    assert cursor.request() == (4, "E1")
    assert not cursor.accept(to_update(parse_msg(update("t", 2, 5))))
    assert cursor.accept(to_update(parse_msg(update("t", 6, 20))))


def test_cursor_forgets_offsets_of_another_epoch() -> None:
    cursor = Cursor(since=-1)
    cursor.subscribed({"epoch": "E1", "recovered": True})
    assert cursor.accept(to_update(parse_msg(update("t", 40, 10))))
    cursor.request()
    cursor.subscribed({"epoch": "E2", "recovered": False})  # the topic was recreated
    snapshot = cursor.snapshot(ServerMessage("snapshot", "t", 3, {"task_id": "t"}))
    assert snapshot.missed and snapshot.requested_since == 40 and snapshot.offset == 3
    assert cursor.accept(to_update(parse_msg(update("t", 5, 20))))


def test_parse_refuses_what_is_not_a_message() -> None:
    for frame in ["nope", "[]", '{"x": 1}', '{"type": "a", "offset": "3"}', '{"type": 1}']:
        with pytest.raises(ProtocolViolation):
            parse(frame)
    msg = parse('{"type": "error", "task_id": "t", "offset": null, "payload": {"code": "x"}}')
    assert not msg.is_update and msg.error_code == "x"
    with pytest.raises(ProtocolViolation):
        to_update(ServerMessage("progress", "t", 1, {"status": "nonsense"}))


def test_a_pong_echoes_its_pings_timestamp_exactly() -> None:
    ping = parse('{"type": "ping", "payload": {"timestamp": 1764876543.1234567}}')
    assert json.loads(pong_frame(ping)) == {"action": "pong", "timestamp": 1764876543.1234567}
    for odd in ("null", "true", '"1.5"', "NaN", "{}"):
        ping = parse('{"type": "ping", "payload": {"timestamp": ' + odd + "}}")
        assert json.loads(pong_frame(ping)) == {"action": "pong"}  # nothing to echo


def parse_msg(raw: dict[str, object]) -> ServerMessage:
    return parse(json.dumps(raw))


def test_a_snapshot_restarts_the_stream_even_lower() -> None:
    cursor = Cursor(since=10**9, last=10**9)  # resumed from an offset the log never had
    cursor.request()
    cursor.subscribed({"epoch": None, "recovered": False})
    snapshot = cursor.snapshot(ServerMessage("snapshot", "t", 12, {"task_id": "t"}))
    assert snapshot.missed and snapshot.requested_since == 10**9
    assert cursor.accept(to_update(parse_msg(update("t", 13, 20))))


def test_cursor_after_a_recreated_log_without_offsets_delivers_the_new_logs_updates() -> None:
    """A saved offset without its epoch, then the log was recreated: `subscribed` says
    `recovered: false` with no offset, the snapshot has none either (the state is not in the
    new log yet). The stream starts again at the new log's start: its updates, at offsets
    lower than the saved one, are all delivered, and a resume asks for what follows them."""

    def in_e2(raw: dict[str, Any]) -> dict[str, Any]:
        return raw | {"payload": raw["payload"] | {"epoch": "E2"}}

    cursor = Cursor(since=40, last=40)
    assert cursor.request() == (40, None)
    cursor.subscribed({"task_id": "t1", "offset": None, "epoch": "E2", "recovered": False})
    state = in_e2(update("t1", 0, 50.0))["payload"] | {"offset": None}
    gap = cursor.snapshot(ServerMessage("snapshot", "t1", None, state))
    assert gap.missed and gap.offset is None
    assert cursor.accept(to_update(parse_msg(in_e2(update("t1", 0, 60.0)))))
    assert cursor.accept(to_update(parse_msg(in_e2(update("t1", 2, 70.0)))))
    assert cursor.request() == (2, "E2")


def test_cursor_after_recovered_false_without_offset_resumes_the_whole_new_log() -> None:
    """Nothing of the new log delivered yet: a resume asks for all of it (-1), never for the
    saved offset of the old log (which the new log may hold, past the updates missed)."""
    cursor = Cursor(since=40, last=40)
    cursor.request()
    cursor.subscribed({"task_id": "t1", "offset": None, "epoch": "E2", "recovered": False})
    assert cursor.request() == (-1, "E2")
    cursor.subscribed({"task_id": "t1", "offset": 7, "epoch": "E3", "recovered": False})
    assert cursor.request() == (7, "E3")


@pytest.mark.parametrize("kind", ["progress", "snapshot", "subscribed"])
def test_a_negative_offset_is_a_protocol_violation(kind: str) -> None:
    """Offsets are Kafka's, never below 0: a cursor with nothing delivered yet took one as its
    `last` and asked the gateway for `since: -3` at the next resume."""
    with pytest.raises(ProtocolViolation):
        parse(json.dumps({"type": kind, "task_id": "t", "offset": -3, "payload": {}}))


def test_a_since_below_minus_one_is_refused() -> None:
    with pytest.raises(ValueError):
        Cursor(since=-2)


def _greeting(payload: dict[str, Any]) -> ServerMessage:
    return ServerMessage("connected", None, None, {"client_id": "c", **payload})


@pytest.mark.parametrize(
    ("rate", "pace"),
    [(8, 4.0), (8.5, 4.25), (50.0, SUBSCRIPTION_FRAMES_PER_SECOND), (1000, 25.0), (0.2, 0.5)],
)
def test_subscription_frames_go_at_half_the_announced_rate(rate: float, pace: float) -> None:
    limits = {"messages_per_second": rate, "subscriptions": 100}
    assert subscription_frames_per_second(_greeting({"limits": limits})) == pace
    assert SLOWEST_SUBSCRIPTION_FRAMES_PER_SECOND == 0.5


@pytest.mark.parametrize(
    "limits",
    [
        None,
        "fast",
        [],
        {},
        {"messages_per_second": "8"},
        {"messages_per_second": True},
        {"messages_per_second": float("nan")},
        {"messages_per_second": float("inf")},
        {"messages_per_second": 0},
        {"messages_per_second": -5},
    ],
)
def test_a_greeting_without_a_rate_keeps_the_default_pace(limits: object) -> None:
    """A gateway from before the field, or a greeting whose rate is not one."""
    payload = {} if limits is None else {"limits": limits}
    assert subscription_frames_per_second(_greeting(payload)) == SUBSCRIPTION_FRAMES_PER_SECOND


@pytest.mark.parametrize(
    "value", [None, 7, True, "", "c" * (LONGEST_CLIENT_ID + 1), ["c-1"], {"id": "c-1"}]
)
def test_a_greeting_without_a_usable_client_id_restores_nothing(value: object) -> None:
    assert client_id(ServerMessage("connected", None, None, {"client_id": value})) is None
    assert client_id(ServerMessage("connected", None, None, {"client_id": "c-1"})) == "c-1"


@pytest.mark.parametrize(
    ("kind", "listed", "tasks"),
    [
        ("reconnected", ["t1", "t2"], {"t1", "t2"}),
        ("reconnected", ["t1", 7, None, ["t2"]], {"t1"}),
        ("reconnected", "t1", set()),
        ("reconnected", {"t1": 1}, set()),
        ("reconnected", None, set()),
        ("connected", ["t1"], set()),  # only `reconnected` restores
    ],
)
def test_the_restored_tasks_are_the_strings_reconnected_lists(
    kind: str, listed: object, tasks: set[str]
) -> None:
    assert restored_tasks(ServerMessage(kind, None, None, {"subscribed": listed})) == tasks


def test_a_kept_restored_stream_drops_what_it_repeats_up_to_the_position() -> None:
    """A caller's `since` is the position until something is delivered: a stream restored
    after an earlier offset repeats what the caller asked to skip, and it is dropped."""
    cursor = Cursor(since=10, epoch="E1")
    assert cursor.takes_restored({"offset": 4, "epoch": "E1", "recovered": True})
    assert not cursor.accept(to_update(parse(json.dumps(update("t1", 10, 5.0)))))
    assert cursor.accept(to_update(parse(json.dumps(update("t1", 12, 6.0)))))
    assert Cursor(since=3).takes_restored({"offset": 3, "recovered": True})  # no epochs
    assert not Cursor(since=3, epoch="E1").takes_restored({"offset": 3, "recovered": True})
    assert not Cursor(since=None).takes_restored({"offset": 0, "recovered": True})
    assert not Cursor(since=-1).takes_restored({"offset": 0, "recovered": True})
