"""The WebSocket protocol (docs/protocol.md) end to end through a real socket, with the fake log:
auth, subscribe/replay/live, bad input, limits, slow clients, heartbeat, sessions."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.support.gateway import PROJECT, make_state, make_update, stable_id
from tests.support.wait import wait_until
from ytmaker_gateway.api.connection import Connection
from ytmaker_shared.events import CancelTask
from ytmaker_shared.progress import TaskStatus

from .conftest import Factory, Harness

T1, T2, T3 = stable_id("t1"), stable_id("t2"), stable_id("t3")
T_BOB, T_DONE, T_NONE = stable_id("t-bob"), stable_id("t-done"), stable_id("no-such-task")
T_LATE = stable_id("t-not-folded-yet")
P1 = PROJECT


async def _open(gw: Harness, user: str = "alice", **query: str) -> ClientConnection:
    params = "&".join(f"{k}={v}" for k, v in ({"token": gw.token(user)} | query).items())
    ws = await connect(f"{gw.ws}/api/v1/ws?{params}", max_size=None)
    hello = await _recv(ws)
    assert hello["type"] in ("connected", "reconnected")
    ws.hello = hello  # type: ignore[attr-defined]
    return ws


async def _recv(ws: ClientConnection, timeout: float = 5) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        message: dict[str, Any] = json.loads(await ws.recv())
    return message


async def _until(ws: ClientConnection, type_: str) -> list[dict[str, Any]]:
    """Every message up to and including the first of `type_`."""
    seen = []
    while True:
        seen.append(await _recv(ws))
        if seen[-1]["type"] == type_:
            return seen


async def _closed_with(ws: ClientConnection, timeout: float = 5) -> int | None:
    async with asyncio.timeout(timeout):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None


@pytest.mark.parametrize("query", ["", "?token=forged", "?token="])
async def test_no_or_bad_token_closes_with_4401(gateway_factory: Factory, query: str) -> None:
    gw = await gateway_factory()
    ws = await connect(f"{gw.ws}/api/v1/ws{query}")
    assert await _closed_with(ws) == 4401


async def test_the_authorization_header_works_too(gateway_factory: Factory) -> None:
    gw = await gateway_factory()
    async with connect(f"{gw.ws}/api/v1/ws", additional_headers=gw.auth()) as ws:
        hello = await _recv(ws)
    assert hello["type"] == "connected" and hello["payload"]["client_id"]
    assert hello["payload"]["heartbeat_interval"] == 30.0 and hello["offset"] is None
    # The limits this gateway holds a connection to, for an SDK to pace itself under.
    assert hello["payload"]["limits"] == {"messages_per_second": 50.0, "subscriptions": 100}


async def test_the_greeting_announces_this_gateways_own_limits(gateway_factory: Factory) -> None:
    gw = await gateway_factory(max_messages_per_second=8, max_subscriptions=3)
    async with connect(f"{gw.ws}/api/v1/ws", additional_headers=gw.auth()) as ws:
        hello = await _recv(ws)
    assert hello["payload"]["limits"] == {"messages_per_second": 8.0, "subscriptions": 3}


async def test_subscribe_replays_then_streams_live(gateway_factory: Factory) -> None:
    gw = await gateway_factory()
    offsets = gw.seed(T1)
    ws = await _open(gw)
    await ws.send(json.dumps({"action": "subscribe", "task_id": T1, "since": offsets[1]}))
    subscribed = await _recv(ws)
    assert subscribed["type"] == "subscribed"
    assert subscribed["payload"]["recovered"] is True and subscribed["offset"] == offsets[1]
    replayed = [await _recv(ws) for _ in offsets[2:]]
    assert [m["offset"] for m in replayed] == offsets[2:]
    live = make_update(T1, n=9, status=TaskStatus.COMPLETED)
    live_offset = gw.log.append(live)
    message = await _recv(ws)
    assert message["offset"] == live_offset and message["payload"]["status"] == "completed"
    await ws.close()


async def test_subscribe_without_since_sends_a_snapshot_first(gateway_factory: Factory) -> None:
    gw = await gateway_factory()
    offsets = gw.seed(T1)
    ws = await _open(gw)
    await ws.send(json.dumps({"action": "subscribe", "task_id": T1, "since": None}))
    subscribed, snapshot = await _recv(ws), await _recv(ws)
    assert subscribed["payload"]["recovered"] is False
    assert snapshot["type"] == "snapshot" and snapshot["offset"] == offsets[-1]
    assert snapshot["payload"]["progress"] == 40
    gw.log.append(make_update(T1, n=5))
    assert (await _recv(ws))["type"] == "progress"
    await ws.close()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{oops", "invalid_json"),
        ('{"action": "dance"}', "unknown_action"),
        ('{"action": "subscribe"}', "missing_field"),
        (json.dumps({"action": "subscribe", "task_id": T1, "since": "x"}), "invalid_field"),
        (json.dumps({"action": "subscribe", "task_id": T_BOB}), "forbidden"),
        (json.dumps({"action": "subscribe", "task_id": T_NONE}), "forbidden"),
        (json.dumps({"action": "cancel", "task_id": T_DONE}), "conflict"),
        ('{"action": "subscribe", "task_id": "no-such-task"}', "invalid_field"),
        (json.dumps({"action": "subscribe", "task_id": f"{T1}/../x"}), "invalid_field"),
    ],
)
async def test_bad_input_gets_an_error_and_the_connection_stays(
    gateway_factory: Factory, frame: str, code: str
) -> None:
    gw = await gateway_factory()
    gw.seed(T_BOB, owner="bob", n=1)
    gw.fake.put_task(make_state(T_DONE, status=TaskStatus.COMPLETED))
    await _refused_and_stays(gw, frame, code)


async def _refused_and_stays(gw: Harness, frame: str | bytes, code: str) -> None:
    """`frame` is answered with an `error` of `code`, and the connection still answers."""
    ws = await _open(gw)
    await ws.send(frame)
    error = await _recv(ws)
    assert error["type"] == "error" and error["payload"]["code"] == code, error
    await ws.send('{"type": "ping"}')
    assert (await _recv(ws))["type"] == "pong"
    await ws.close()


async def test_an_oversize_frame_closes_with_1009(gateway_factory: Factory) -> None:
    gw = await gateway_factory(max_frame_bytes=2048)
    ws = await _open(gw)
    await ws.send("x" * 5000)
    assert await _closed_with(ws) == 1009


async def test_flooding_gets_errors_then_a_close(gateway_factory: Factory) -> None:
    gw = await gateway_factory(max_messages_per_second=5, max_violations=4)
    ws = await _open(gw)
    for _ in range(20):
        await ws.send('{"type": "ping"}')
    codes = []
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            message = await _recv(ws)
            codes.append(message["payload"].get("code"))
    assert codes.count("rate_limited") == 4
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_too_many_subscriptions(gateway_factory: Factory) -> None:
    gw = await gateway_factory(max_subscriptions=2)
    for t in (T1, T2, T3):
        gw.seed(t, n=1)
    ws = await _open(gw)
    for t in (T1, T2, T3):
        await ws.send(json.dumps({"action": "subscribe", "task_id": t, "since": -1}))
    messages = await _until(ws, "error")
    assert messages[-1]["payload"]["code"] == "too_many_subscriptions"
    assert messages[-1]["task_id"] == T3
    await ws.close()


async def test_a_client_that_cannot_keep_up_is_closed_with_1013(gateway_factory: Factory) -> None:
    gw = await gateway_factory(client_queue_size=10)
    gw.seed(T1, n=1)
    fast, slow = await _open(gw), await _open(gw)
    for ws in (fast, slow):
        await ws.send(json.dumps({"action": "subscribe", "task_id": T1, "since": 0}))
        await _until(ws, "subscribed")
    for n in range(30):  # one event-loop step: the writers cannot drain in between
        gw.log.append(make_update(T1, n=n))
    assert await _closed_with(slow) == 1013
    await fast.close()


async def test_silence_past_two_heartbeats_closes_the_connection(gateway_factory: Factory) -> None:
    gw = await gateway_factory(heartbeat_interval_s=0.2)
    ws = await _open(gw)
    assert (await _recv(ws))["type"] == "ping"
    assert await _closed_with(ws) == 4408


def _connection(gw: Harness, client_id: str) -> Connection:
    """The gateway's side of an open WebSocket (to beat its heartbeat now)."""
    connection = gw.gateway.sessions.active[client_id].connection
    assert isinstance(connection, Connection)
    return connection


async def _pong(ws: ClientConnection) -> list[dict[str, Any]]:
    """Read up to the server's ping and answer it; what came before it."""
    seen = await _until(ws, "ping")
    await ws.send(json.dumps({"action": "pong"}))
    return seen[:-1]


async def _leave_and_reconnect(
    gw: Harness, ws: ClientConnection, client_id: str, missed: int
) -> tuple[ClientConnection, list[int], list[int]]:
    """Close `ws`; `missed` updates are written while away; reconnect with `old_client_id`.
    The new socket, the offsets missed, and those it was sent up to the last of them."""
    await ws.close()
    await wait_until(lambda: client_id not in gw.gateway.sessions.active, timeout=5)
    written = [gw.log.append(make_update(T1, n=10 + n)) for n in range(missed)]
    again = await _open(gw, old_client_id=client_id)
    hello = again.hello  # type: ignore[attr-defined]
    assert hello["type"] == "reconnected" and hello["payload"]["old_client_id"] == client_id
    assert hello["payload"]["subscribed"] == [T1]
    sent = []
    while not sent or sent[-1] != written[-1]:
        sent.append((await _recv(again))["offset"])
    return again, written, sent


async def _watching(
    gw: Harness, *, whole_run: bool = False
) -> tuple[ClientConnection, str, list[int]]:
    """Three updates of T1; a client that subscribed after the first (or, `whole_run`, with
    `since: -1`) and received what followed. Its socket, its client id and the three offsets."""
    offsets = gw.seed(T1, n=3)
    ws = await _open(gw)
    since = -1 if whole_run else offsets[0]
    await ws.send(json.dumps({"action": "subscribe", "task_id": T1, "since": since}))
    await _until(ws, "subscribed")
    sent = [offset for offset in offsets if offset > since]
    assert [(await _recv(ws))["offset"] for _ in sent] == sent
    return ws, ws.hello["payload"]["client_id"], offsets  # type: ignore[attr-defined]


async def test_a_reconnect_restores_subscriptions_and_sends_what_was_missed(
    gateway_factory: Factory,
) -> None:
    gw = await gateway_factory()
    ws, client_id, offsets = await _watching(gw)
    seen = offsets[1:]
    _connection(gw, client_id)._beat()
    assert await _pong(ws) == []  # the ping came after what was seen
    await wait_until(lambda: _connection(gw, client_id).offsets() == {T1: seen[-1]}, timeout=5)

    again, missed, sent = await _leave_and_reconnect(gw, ws, client_id, missed=3)
    assert sent == [seen[-1], *missed]  # `subscribed` after what was seen, then exactly the rest
    await again.close()
    record = gw.fake.sessions[client_id]
    assert record["user"] == "alice" and record["disconnected_at"] is not None
    assert record["offsets"] == {T1: seen[-1]}  # no ping answered for what followed


async def test_a_session_resumes_after_what_the_client_said_it_has_not_what_it_was_sent(
    gateway_factory: Factory,
) -> None:
    """Updates written to a client that answered no ping since may never have been read (its
    connection dropped with them in a buffer): a restore resends them rather than skip them."""
    gw = await gateway_factory()
    ws, client_id, offsets = await _watching(gw)
    assert _connection(gw, client_id).offsets() == {T1: offsets[0]}  # its `since`

    again, missed, sent = await _leave_and_reconnect(gw, ws, client_id, missed=2)
    assert sent == [offsets[0], *offsets[1:], *missed]
    await again.close()


async def test_a_whole_run_subscription_is_restored_from_the_start_before_any_pong(
    gateway_factory: Factory,
) -> None:
    """`since: -1` asks for the whole run: restored before the client answered a ping, it
    gets the whole run again (it may not have read it), not a snapshot (decision 0119)."""
    gw = await gateway_factory()
    ws, client_id, offsets = await _watching(gw, whole_run=True)
    assert _connection(gw, client_id).offsets() == {T1: -1}

    again, missed, sent = await _leave_and_reconnect(gw, ws, client_id, missed=2)
    assert sent == [None, *offsets, *missed]  # `subscribed` from the start, then every update
    await again.close()
    assert gw.fake.sessions[client_id]["offsets"] == {T1: -1}


async def test_a_pong_vouches_for_what_was_queued_before_its_ping_only(
    gateway_factory: Factory,
) -> None:
    gw = await gateway_factory()
    offsets = gw.seed(T1, n=2)
    ws = await _open(gw)
    client_id = ws.hello["payload"]["client_id"]  # type: ignore[attr-defined]
    connection = _connection(gw, client_id)
    await ws.send(json.dumps({"action": "pong"}))  # no ping to answer: vouches for nothing
    await ws.send(json.dumps({"action": "subscribe", "task_id": T1, "since": None}))
    await _until(ws, "snapshot")
    assert connection.offsets() == {T1: None}  # a snapshot, not yet acknowledged

    connection._beat()
    after_ping = gw.log.append(make_update(T1, n=5))
    connection._beat()
    assert await _pong(ws) == []
    assert (await _recv(ws))["offset"] == after_ping
    await wait_until(lambda: connection.offsets() == {T1: offsets[-1]}, timeout=5)
    await _pong(ws)  # the second ping, queued after `after_ping`
    await wait_until(lambda: connection.offsets() == {T1: after_ping}, timeout=5)
    await ws.send(json.dumps({"action": "pong"}))  # with no ping in flight: answers nothing
    await ws.send(json.dumps({"action": "ping"}))
    assert (await _recv(ws))["type"] == "pong"  # so it was taken before the next ping
    later = gw.log.append(make_update(T1, n=6))
    connection._beat()
    assert (await _recv(ws))["offset"] == later
    await _pong(ws)  # answers the third ping, not taken by the stray pong
    await wait_until(lambda: connection.offsets() == {T1: later}, timeout=5)
    await ws.close()


async def _pong_with(ws: ClientConnection, timestamp: float) -> list[dict[str, Any]]:
    """Send a pong echoing `timestamp`, then a ping: once the server's pong comes (returned,
    with what came before it), the server has taken ours."""
    await ws.send(json.dumps({"action": "pong", "timestamp": timestamp}))
    await ws.send(json.dumps({"action": "ping"}))
    return await _until(ws, "pong")


async def test_a_pong_echoing_a_ping_answers_that_ping_only_and_the_ones_before(
    gateway_factory: Factory,
) -> None:
    """The echo names the ping (decision 0118): a pong echoing no ping held vouches for
    nothing, even with pings in flight; the answer to the second of two pings vouches for what
    was queued before it; a late or stale echo answers nothing newer."""
    gw = await gateway_factory()
    ws, client_id, offsets = await _watching(gw)
    connection = _connection(gw, client_id)
    connection._beat()
    between = gw.log.append(make_update(T1, n=5))
    connection._beat()

    seen = await _pong_with(ws, 12345.5)  # a stray pong: no ping carried that timestamp
    assert [m["offset"] for m in seen if m["type"] == "progress"] == [between]
    first, second = (m["payload"]["timestamp"] for m in seen if m["type"] == "ping")
    assert connection.offsets() == {T1: offsets[0]}  # still its `since`

    await _pong_with(ws, second)
    assert connection.offsets() == {T1: between}
    assert not connection._pings  # the first ping is answered with the second

    later = gw.log.append(make_update(T1, n=6))
    connection._beat()
    seen = await _pong_with(ws, first)  # the first ping's echo, late: answers nothing now
    assert [m["offset"] for m in seen if m["type"] == "progress"] == [later]
    assert connection.offsets() == {T1: between}
    (third,) = (m["payload"]["timestamp"] for m in seen if m["type"] == "ping")
    await _pong_with(ws, third)
    assert connection.offsets() == {T1: later}
    await ws.close()


async def test_pings_left_unanswered_are_let_go_and_their_late_pongs_vouch_for_nothing(
    gateway_factory: Factory,
) -> None:
    """A client that answers no ping costs the server a bounded list; the answers to pings
    already let go vouch for nothing, the answer to a ping still held for what preceded it."""
    gw = await gateway_factory()
    ws, client_id, offsets = await _watching(gw)
    connection = _connection(gw, client_id)
    written = []
    for n in range(12):  # more than the server keeps
        written.append(gw.log.append(make_update(T1, n=10 + n)))
        connection._beat()
    assert len(connection._pings) < 12
    kept_from = 12 - len(connection._pings)  # the pings before it were let go
    for _ in range(12):
        await _until(ws, "ping")  # read, not yet answered
    for n in range(12):
        await ws.send(json.dumps({"action": "pong"}))
        await ws.send(json.dumps({"action": "ping"}))
        await _until(ws, "pong")  # the server has taken our pong by now
        assert connection.offsets() == {T1: written[n] if n >= kept_from else offsets[0]}
    await ws.close()


async def test_a_reconnect_takes_over_its_connection_still_open(gateway_factory: Factory) -> None:
    """The client saw its link die before the gateway's heartbeat did: its reconnect with the
    old id closes the old connection (1000) and restores its session after what the client
    acknowledged, not `connected` with nothing restored (decision 0141)."""
    gw = await gateway_factory()
    ws, client_id, offsets = await _watching(gw)
    _connection(gw, client_id)._beat()
    assert await _pong(ws) == []
    await wait_until(lambda: _connection(gw, client_id).offsets() == {T1: offsets[2]}, timeout=5)
    missed = [gw.log.append(make_update(T1, n=10 + n)) for n in range(2)]

    again = await _open(gw, old_client_id=client_id)  # `ws` is still open
    hello = again.hello  # type: ignore[attr-defined]
    assert hello["type"] == "reconnected" and hello["payload"]["subscribed"] == [T1]
    sent = []
    while not sent or sent[-1] != missed[-1]:
        sent.append((await _recv(again))["offset"])
    assert sent == [offsets[2], *missed]
    assert await _closed_with(ws) == 1000
    assert client_id not in gw.gateway.sessions.active
    await again.close()


async def test_a_restored_stream_whose_replay_fails_says_it_was_restored(
    gateway_factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Marked like its `subscribed`, so that the client's own subscribe decides (0141)."""
    gw = await gateway_factory()
    ws, client_id, _ = await _watching(gw)
    await ws.close()
    await wait_until(lambda: client_id not in gw.gateway.sessions.active, timeout=5)

    async def the_log_does_not_answer(*_: object, **__: object) -> None:
        raise TimeoutError("no broker")

    monkeypatch.setattr(gw.gateway.streams, "subscribe", the_log_does_not_answer)
    again = await _open(gw, old_client_id=client_id)
    assert again.hello["type"] == "reconnected"  # type: ignore[attr-defined]
    error = (await _until(again, "error"))[-1]
    assert error["task_id"] == T1 and error["payload"]["code"] == "replay_failed"
    assert error["payload"]["details"] == {"restored": True}
    await again.close()


async def test_someone_elses_open_connection_is_neither_restored_nor_closed(
    gateway_factory: Factory,
) -> None:
    gw = await gateway_factory()
    ws = await _open(gw, "alice")
    client_id = ws.hello["payload"]["client_id"]  # type: ignore[attr-defined]
    other = await _open(gw, "bob", old_client_id=client_id)
    assert other.hello["type"] == "connected"  # type: ignore[attr-defined]
    await ws.send(json.dumps({"action": "ping"}))
    assert (await _until(ws, "pong"))[-1]["type"] == "pong"
    assert client_id in gw.gateway.sessions.active
    await other.close()
    await ws.close()


async def test_someone_elses_old_client_id_restores_nothing(gateway_factory: Factory) -> None:
    gw = await gateway_factory()
    gw.seed(T1, n=1)
    ws = await _open(gw, "alice")
    client_id = ws.hello["payload"]["client_id"]  # type: ignore[attr-defined]
    await ws.close()
    await wait_until(lambda: client_id not in gw.gateway.sessions.active, timeout=5)
    other = await _open(gw, "bob", old_client_id=client_id)
    assert other.hello["type"] == "connected"  # type: ignore[attr-defined]
    await other.close()


async def test_control_over_the_socket(gateway_factory: Factory) -> None:
    gw = await gateway_factory()
    gw.seed(T1, n=1)
    ws = await _open(gw)
    await ws.send(json.dumps({"action": "cancel", "task_id": T1, "reason": "enough"}))
    ack = await _recv(ws)
    assert ack["type"] == "ack" and ack["payload"]["action"] == "cancel"
    [(_, event)] = gw.producer.sent
    assert isinstance(event, CancelTask) and event.payload.reason == "enough"
    await ws.close()


async def test_the_project_stream(gateway_factory: Factory) -> None:
    gw = await gateway_factory()
    offsets = gw.seed(T1, n=2)
    async with connect(f"{gw.ws}/api/v1/projects/{P1}/progress?token={gw.token()}") as ws:
        assert (await _recv(ws))["type"] == "connected"
        initial = await _recv(ws)
        assert initial["type"] == "initial" and initial["offset"] == offsets[-1]
        assert initial["payload"]["state"]["task_id"] == T1
        later = gw.log.append(make_update(T1, n=2))
        assert (await _recv(ws))["offset"] == later
    async with connect(f"{gw.ws}/api/v1/projects/{P1}/progress?token={gw.token('bob')}") as ws:
        await _recv(ws)
        assert (await _recv(ws))["payload"]["code"] == "forbidden"
        assert await _closed_with(ws) == 4403


async def test_subscribe_while_the_read_model_catches_up_is_retryable_and_names_the_task(
    gateway_factory: Factory,
) -> None:
    """After a restart the read model may not have folded a task yet: the answer is the
    retryable `unavailable` for that task, never `forbidden` (found by the chaos test)."""
    gw = await gateway_factory()
    subscribe = {"action": "subscribe", "task_id": T_LATE, "since": None}
    gw.fake.catching_up = True
    ws = await _open(gw)
    await ws.send(json.dumps(subscribe))
    error = await _recv(ws)
    assert (error["type"], error["task_id"]) == ("error", T_LATE)
    assert error["payload"]["code"] == "unavailable"
    gw.fake.catching_up = False
    await ws.send(json.dumps(subscribe))
    error = await _recv(ws)
    assert (error["task_id"], error["payload"]["code"]) == (T_LATE, "forbidden")
    await ws.close()


async def test_somebody_elses_task_is_refused_as_an_unknown_one_is_as_late_and_alike(
    gateway_factory: Factory,
) -> None:
    """A subscribe to an unknown task waits for the read model before its `forbidden`; one to
    somebody else's answered at once, and while the read model caught up it answered
    `forbidden` where an unknown task got `unavailable`: either told bob's task exists."""
    gw = await gateway_factory(unknown_task_wait_s=1.0)
    gw.fake.put_task(make_state(T_BOB, owner="bob"))
    ws = await _open(gw)
    for catching_up, code in ((False, "forbidden"), (True, "unavailable")):
        gw.fake.catching_up = catching_up
        took = {}
        for task_id in (T_BOB, T_NONE):
            started = asyncio.get_running_loop().time()
            await ws.send(json.dumps({"action": "subscribe", "task_id": task_id}))
            error = await _recv(ws)
            took[task_id] = asyncio.get_running_loop().time() - started
            assert (error["type"], error["task_id"]) == ("error", task_id)
            assert error["payload"]["code"] == code, (catching_up, task_id)
        assert abs(took[T_BOB] - took[T_NONE]) < 0.5, took
    await ws.close()
