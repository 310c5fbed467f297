"""The Socket.IO `/progress` namespace through a real server and the python-socketio client,
with the fake log: auth, join (replay then live), leave, ping/pong, cancel_task, bad input, and
connection state recovery (a client that comes back with its pid and last offset gets exactly
what it missed)."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import socketio

from tests.support.gateway import make_state, make_update, stable_id
from tests.support.wait import wait_until
from ytmaker_gateway.auth import mint_token
from ytmaker_gateway.sio.positions import parse
from ytmaker_shared.events import CancelTask
from ytmaker_shared.progress import TaskStatus

from .conftest import Factory, Harness

T1, T2 = stable_id("t1"), stable_id("t2")
BOB_TASK, DONE_TASK = stable_id("t-bob"), stable_id("t-done")

NS = "/progress"
UPDATES = ("snapshot", "progress", "status", "error")


class Recorder:
    """A python-socketio client on /progress that keeps every event and the last position
    string, as Socket.IO's own clients do for connection state recovery."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.offset: str | None = None
        self.refused: Any = None

        @self.client.on("*", namespace=NS)  # type: ignore[misc]
        async def any_event(event: str, msg: dict[str, Any], *rest: Any) -> None:
            self.events.append((event, msg))
            if rest and isinstance(rest[-1], str):
                self.offset = rest[-1]

        @self.client.on("connect_error", namespace=NS)  # type: ignore[misc]
        async def refused(data: Any) -> None:
            self.refused = data

    async def connect(
        self,
        gw: Harness,
        auth: dict[str, Any] | None,
        transports: list[str] | None = None,
        **kw: Any,
    ) -> None:
        await self.client.connect(
            gw.base,
            namespaces=[NS],
            auth=auth,
            transports=transports or ["websocket"],
            wait_timeout=5,
            **kw,
        )

    def of(self, *kinds: str) -> list[dict[str, Any]]:
        return [m for e, m in self.events if e in kinds]

    def offsets(self, task_id: str) -> list[int]:
        return [
            m["offset"]
            for m in self.of(*UPDATES[1:])
            if m["task_id"] == task_id and m["offset"] is not None
        ]

    async def call(self, event: str, data: Any) -> Any:
        return await self.client.call(event, data, namespace=NS, timeout=5)


@pytest.fixture
async def recorders() -> AsyncIterator[list[Recorder]]:
    made: list[Recorder] = []
    yield made
    for r in made:
        await r.client.disconnect()


async def _client(gw: Harness, made: list[Recorder], user: str = "alice") -> Recorder:
    r = Recorder()
    made.append(r)
    await r.connect(gw, {"token": gw.token(user)})
    await wait_until(lambda: r.of("connected"), timeout=5, what="connected")
    return r


async def _joined(gw: Harness, made: list[Recorder], task_id: str, n: int) -> Recorder:
    """A client that joined `task_id` from its start, once the `n` updates seeded for it have
    arrived."""
    offsets = gw.seed(task_id, n=n)
    r = await _client(gw, made)
    await r.call("join", {"task_id": task_id, "since": -1})
    await wait_until(lambda: r.offsets(task_id) == offsets, timeout=5, what="the replay")
    return r


@pytest.mark.parametrize("auth", [None, {"token": "forged"}, {"token": 7}])
async def test_no_or_bad_token_is_refused(
    gateway_factory: Factory, recorders: list[Recorder], auth: Any
) -> None:
    gw = await gateway_factory()
    r = Recorder()
    recorders.append(r)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await r.connect(gw, auth)
    assert r.refused and r.refused["data"] == {"code": "unauthorized"}


async def test_the_token_query_parameter_works_too(
    gateway_factory: Factory, recorders: list[Recorder]
) -> None:
    gw = await gateway_factory()
    r = Recorder()
    recorders.append(r)
    await r.client.connect(
        f"{gw.base}?token={gw.token()}", namespaces=[NS], transports=["websocket"], wait_timeout=5
    )
    await wait_until(lambda: r.of("connected"), timeout=5, what="connected")
    hello = r.of("connected")[0]["payload"]
    assert hello["recovered"] is False and hello["pid"] and hello["restored"] == []
    assert hello["limits"] == {"messages_per_second": 50.0, "subscriptions": 100}


async def test_a_connection_is_closed_when_its_token_expires(
    gateway_factory: Factory, recorders: list[Recorder]
) -> None:
    gw = await gateway_factory(jwt_leeway_s=0)
    r = Recorder()
    recorders.append(r)
    await r.connect(gw, {"token": mint_token(gw.gateway.tokens, "alice", ttl_s=2)})
    await wait_until(lambda: r.of("connected"), timeout=5, what="connected")
    await wait_until(lambda: r.of("error"), timeout=10, what="the expiry's error")
    assert r.of("error")[0]["payload"]["code"] == "unauthorized"
    await wait_until(lambda: not r.client.connected, timeout=5, what="the transport closed")


async def test_a_user_past_the_connection_cap_is_refused(
    gateway_factory: Factory, recorders: list[Recorder]
) -> None:
    gw = await gateway_factory(max_connections_per_user=2)
    for _ in range(2):
        r = Recorder()
        recorders.append(r)
        await r.connect(gw, {"token": gw.token()})
    third = Recorder()
    recorders.append(third)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await third.connect(gw, {"token": gw.token()})
    refused = third.refused["data"]
    assert refused["code"] == "too_many_connections" and refused["retry_after"] > 0
    bob = Recorder()  # another user is not counted against alice
    recorders.append(bob)
    await bob.connect(gw, {"token": gw.token("bob")})
    await wait_until(lambda: bob.of("connected"), timeout=5, what="bob connected")


async def test_a_connect_that_fails_unexpectedly_is_refused_not_left_waiting(
    gateway_factory: Factory, recorders: list[Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    """python-socketio answers nothing to a connect handler's unexpected exception: the client
    would wait for its namespace forever, the gateway keep a half-made client (which would
    count against the user's two connections here: the first stays open)."""
    gw = await gateway_factory(max_connections_per_user=2)
    r = await _joined(gw, recorders, T1, n=2)
    pid, offset = r.of("connected")[0]["payload"]["pid"], r.offset

    async def broken(*_: Any) -> bool:
        raise RuntimeError("a bug in the recovery")

    monkeypatch.setattr(gw.gateway.streams, "resumable", broken)
    back = Recorder()
    recorders.append(back)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await back.connect(gw, {"token": gw.token(), "pid": pid, "offset": offset})
    assert back.refused["data"] == {"code": "internal", "retry_after": 5}
    monkeypatch.undo()
    again = Recorder()
    recorders.append(again)
    await again.connect(gw, {"token": gw.token(), "pid": pid, "offset": offset})
    await wait_until(lambda: again.of("connected"), timeout=5, what="connected again")
    assert again.of("connected")[0]["payload"]["recovered"] is True


async def test_join_replays_then_streams_live_and_leave_stops(
    gateway_factory: Factory, recorders: list[Recorder]
) -> None:
    gw = await gateway_factory()
    offsets = gw.seed(T1)
    r = await _client(gw, recorders)
    ack = await r.call("join", {"task_id": T1, "since": offsets[1]})
    assert ack == {"ok": True, "task_id": T1}
    await wait_until(lambda: r.offsets(T1) == offsets[2:], timeout=5, what="the replay")
    subscribed = r.of("subscribed")[0]
    assert subscribed["payload"]["recovered"] is True and subscribed["offset"] == offsets[1]
    live = gw.log.append(make_update(T1, n=9, status=TaskStatus.COMPLETED))
    await wait_until(lambda: r.offsets(T1) == [*offsets[2:], live], timeout=5, what="live")
    assert r.of("progress")[-1]["payload"]["status"] == "completed"
    assert parse(r.offset, 10).tasks == {T1: live}

    assert await r.call("leave", {"task_id": T1}) == {"ok": True, "task_id": T1}
    await wait_until(lambda: r.of("unsubscribed"), timeout=5, what="unsubscribed")
    gw.log.append(make_update(T1, n=10))
    assert await r.call("ping", {}) == {"ok": True, "timestamp": pytest.approx(0, abs=1e10)}
    await wait_until(lambda: r.of("pong"), timeout=5, what="pong")
    assert r.offsets(T1)[-1] == live  # nothing after leave
    assert parse(r.offset, 10).tasks == {}


async def test_join_without_since_sends_a_snapshot(
    gateway_factory: Factory, recorders: list[Recorder]
) -> None:
    gw = await gateway_factory()
    offsets = gw.seed(T1)
    r = await _client(gw, recorders)
    await r.call("join", {"task_id": T1, "since": None})
    await wait_until(lambda: r.of("snapshot"), timeout=5, what="the snapshot")
    assert r.of("snapshot")[0]["offset"] == offsets[-1]
    assert r.of("snapshot")[0]["payload"]["progress"] == 40
    assert parse(r.offset, 10).tasks == {T1: offsets[-1]}


@pytest.mark.parametrize(
    ("event", "data", "code"),
    [
        ("join", {}, "missing_field"),
        ("join", T1, "invalid_message"),
        ("join", {"task_id": T1, "since": "x"}, "invalid_field"),
        ("join", {"task_id": "a,b"}, "invalid_field"),
        ("join", {"task_id": BOB_TASK}, "forbidden"),
        ("join", {"task_id": stable_id("no-such-task")}, "forbidden"),
        ("dance", {}, "unknown_event"),
        ("cancel_task", {"task_id": DONE_TASK}, "conflict"),
        ("cancel_task", {"task_id": T1, "reason": 5}, "invalid_field"),
    ],
)
async def test_bad_requests_get_an_error_and_the_socket_stays(
    gateway_factory: Factory, recorders: list[Recorder], event: str, data: Any, code: str
) -> None:
    gw = await gateway_factory()
    gw.fake.put_task(make_state(T1))
    gw.fake.put_task(make_state(BOB_TASK, owner="bob"))
    gw.fake.put_task(make_state(DONE_TASK, status=TaskStatus.COMPLETED))
    r = await _client(gw, recorders)
    ack = await r.call(event, data)
    assert ack["ok"] is False and ack["error"]["code"] == code
    await wait_until(lambda: r.of("error"), timeout=5, what="the error event")
    assert r.of("error")[0]["payload"]["code"] == code
    assert (await r.call("ping", None))["ok"] is True


async def test_cancel_task_emits_the_control_request(
    gateway_factory: Factory, recorders: list[Recorder]
) -> None:
    gw = await gateway_factory()
    gw.fake.put_task(make_state(T1))
    r = await _client(gw, recorders)
    ack = await r.call("cancel_task", {"task_id": T1, "reason": "enough"})
    assert ack["ok"] is True and ack["action"] == "cancel" and ack["accepted"] is True
    (_topic, event) = gw.producer.sent[-1]
    assert isinstance(event, CancelTask) and event.task_id == T1
    assert event.payload.reason == "enough" and event.payload.requested_by == "alice"
    await wait_until(lambda: r.of("ack"), timeout=5, what="the ack event")


async def test_recovery_resumes_every_task_exactly_after_its_offset(
    gateway_factory: Factory, recorders: list[Recorder]
) -> None:
    gw = await gateway_factory()
    first = {t: gw.seed(t, n=3) for t in (T1, T2)}
    r = await _client(gw, recorders)
    for task_id in first:
        await r.call("join", {"task_id": task_id, "since": -1})
    await wait_until(
        lambda: all(r.offsets(t) == first[t] for t in first), timeout=5, what="the replays"
    )
    pid = r.of("connected")[0]["payload"]["pid"]
    offset = r.offset
    assert offset is not None and parse(offset, 10).tasks == {t: o[-1] for t, o in first.items()}
    await r.client.disconnect()

    # Missed while away, on both tasks.
    missed = {t: gw.seed(t, n=2) for t in first}
    back = Recorder()
    recorders.append(back)
    await back.connect(gw, {"token": gw.token(), "pid": pid, "offset": offset})
    await wait_until(
        lambda: all(back.offsets(t) == missed[t] for t in missed), timeout=5, what="recovery"
    )
    hello = back.of("connected")[0]["payload"]
    assert hello["recovered"] is True and hello["pid"] == pid
    assert sorted(hello["restored"]) == sorted([T1, T2])
    assert all(m["payload"]["restored"] for m in back.of("subscribed"))
    live = gw.log.append(make_update(T2, n=20))
    await wait_until(lambda: back.offsets(T2)[-1:] == [live], timeout=5, what="live again")
    assert back.offsets(T1) == missed[T1]


async def test_recovery_of_an_offset_no_longer_held_says_so(
    gateway_factory: Factory, recorders: list[Recorder]
) -> None:
    gw = await gateway_factory()
    offsets = gw.seed(T1, n=4)
    r = await _client(gw, recorders)
    await r.call("join", {"task_id": T1, "since": -1})
    await wait_until(lambda: r.offsets(T1) == offsets, timeout=5, what="the replay")
    pid, offset = r.of("connected")[0]["payload"]["pid"], r.offset
    gw.seed(T1, n=3)
    partition = gw.gateway.hub.partition_of(T1)
    gw.log.log_start[partition] = 10_000  # retention took everything
    gw.gateway.hub.cache = type(gw.gateway.hub.cache)(per_task=0, tasks=0)
    back = Recorder()
    recorders.append(back)
    await back.connect(gw, {"token": gw.token(), "pid": pid, "offset": offset})
    await wait_until(lambda: back.of("snapshot"), timeout=5, what="the snapshot")
    hello = back.of("connected")[0]["payload"]
    assert hello["recovered"] is False and hello["pid"] != pid
    assert back.of("subscribed")[0]["payload"]["recovered"] is False


@pytest.mark.parametrize(
    "offset", ["garbage", "1|e|t1:x", "1|e|" + ",".join(f"t{i}:1" for i in range(200)), 5]
)
async def test_recovery_with_a_forged_offset_starts_afresh(
    gateway_factory: Factory, recorders: list[Recorder], offset: Any
) -> None:
    gw = await gateway_factory()
    r = Recorder()
    recorders.append(r)
    await r.connect(gw, {"token": gw.token(), "pid": "p", "offset": offset})
    await wait_until(lambda: r.of("connected") and r.of("error"), timeout=5, what="refusal")
    assert r.of("connected")[0]["payload"]["recovered"] is False
    assert r.of("error")[0]["payload"]["code"] == "invalid_field"


async def test_recovery_never_reaches_somebody_elses_task(
    gateway_factory: Factory, recorders: list[Recorder]
) -> None:
    gw = await gateway_factory()
    gw.seed(BOB_TASK, owner="bob", n=2)
    r = Recorder()
    recorders.append(r)
    await r.connect(gw, {"token": gw.token(), "pid": "p", "offset": f"1||{BOB_TASK}:-1"})
    await wait_until(lambda: r.of("error"), timeout=5, what="the refusal")
    assert r.of("error")[0]["payload"]["code"] == "forbidden"
    assert r.of("error")[0]["payload"]["details"]["restored"] is True
    assert r.offsets(BOB_TASK) == [] and r.of("connected")[0]["payload"]["recovered"] is False


async def test_a_client_that_cannot_keep_up_is_dropped_and_recovers_by_position(
    gateway_factory: Factory, recorders: list[Recorder]
) -> None:
    gw = await gateway_factory(client_queue_size=5)
    r = await _joined(gw, recorders, T1, n=3)
    pid, position = r.of("connected")[0]["payload"]["pid"], r.offset
    client = next(iter(gw.gateway.hub._tasks[T1])).queue
    for i in range(3, 40):  # a burst the queue of 5 cannot hold
        client.push(f'{{"type": "pong", "payload": {{"n": {i}}}}}')
    await wait_until(lambda: not r.client.connected, timeout=5, what="the drop")
    assert T1 not in gw.gateway.hub._tasks  # unregistered
    missed = gw.seed(T1, n=2)
    back = Recorder()
    recorders.append(back)
    await back.connect(gw, {"token": gw.token(), "pid": pid, "offset": position})
    await wait_until(lambda: back.offsets(T1) == missed, timeout=5, what="recovery")


class RawSocket:
    """Socket.IO spoken by hand over Engine.IO's websocket transport: packets no well-behaved
    client library would send."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    @classmethod
    async def open(cls, gw: Harness) -> RawSocket:
        from websockets.asyncio.client import connect

        ws = await connect(f"{gw.ws}/socket.io/?EIO=4&transport=websocket", max_size=None)
        await ws.recv()  # Engine.IO's open packet
        await ws.send(f'40{NS},{{"token": "{gw.token()}"}}')
        return cls(ws)

    async def until(self, prefix: str, timeout: float = 5) -> str:
        async with asyncio.timeout(timeout):
            while True:
                packet = await self.ws.recv()
                if isinstance(packet, str) and packet.startswith(prefix):
                    return packet

    async def ack(self, n: int) -> Any:
        return json.loads((await self.until(f"43{NS},{n}"))[len(f"43{NS},{n}") :])


def _sio_clients() -> list[Any]:
    from ytmaker_gateway.sio.client import SioClient

    return [o for o in gc.get_objects() if type(o) is SioClient]


@pytest.mark.parametrize(
    ("packets", "code"),
    [
        ([f'42{NS},7["join",{{"task_id":"{T1}","x":{"[" * 1000}{"]" * 1000}}}]'], "invalid_field"),
        ([f'42{NS},7[5,{{"task_id":"{T1}"}}]'], "unknown_event"),
        ([f'42{NS},7[["join"],{{"task_id":"{T1}"}}]'], "unknown_event"),
        ([f'42{NS},7[{{"join":1}}]'], "unknown_event"),
        (  # a binary attachment where a field goes
            [
                f'451-{NS},7["join",{{"task_id":"{T1}","since":{{"_placeholder":true,"num":0}}}}]',
                b"\x01",
            ],
            "invalid_field",
        ),
    ],
)
async def test_any_event_packet_gets_an_error_and_an_ack(
    gateway_factory: Factory, packets: list[str | bytes], code: str
) -> None:
    """Every client event is acknowledged, whatever the packet holds (docs/protocol.md
    "Socket.IO"): an event that is not a string, nesting JSON allows and Python's encoder does
    not, a binary attachment. Each raised inside the handler before: no ack, no error."""
    gw = await gateway_factory()
    gw.fake.put_task(make_state(T1))
    raw = await RawSocket.open(gw)
    await raw.until(f'42{NS},["connected"')
    for packet in packets:
        await raw.ws.send(packet)
    ack = await raw.ack(7)
    assert ack[0]["ok"] is False and ack[0]["error"]["code"] == code
    error = json.loads((await raw.until(f'42{NS},["error"'))[len(f"42{NS},") :])
    assert error[1]["payload"]["code"] == code
    await raw.ws.send(f'42{NS},8["ping"]')
    assert (await raw.ack(8))[0]["ok"] is True
    await raw.ws.close()


async def test_events_a_client_names_connect_or_disconnect_are_not_taken_for_them(
    gateway_factory: Factory,
) -> None:
    """python-socketio hands a client's event named `connect` or `disconnect` to the namespace
    like the real ones: a second client replaced the first, whose subscription stayed in the
    hub after the socket closed; a client forgotten while its transport stayed open was not
    counted against the user's connections."""
    gw = await gateway_factory(max_connections_per_user=1)
    gw.seed(T1, n=2)
    raw = await RawSocket.open(gw)
    await raw.ws.send(f'42{NS},7["join",{{"task_id":"{T1}","since":-1}}]')
    assert (await raw.ack(7))[0]["ok"] is True
    query = f"token={gw.token()}"
    await raw.ws.send(f'42{NS},8["connect",{{"QUERY_STRING":"{query}"}}]')
    assert (await raw.ack(8))[0]["error"]["code"] == "unknown_event"
    await raw.ws.send(f'42{NS},9["disconnect","client namespace disconnect"]')
    assert (await raw.ack(9))[0]["error"]["code"] == "unknown_event"
    second = Recorder()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await second.connect(gw, {"token": gw.token()})
    assert second.refused["data"]["code"] == "too_many_connections"
    await raw.ws.close()
    await wait_until(
        lambda: gw.gateway.hub.stats()["subscribed_tasks"] == 0, timeout=5, what="unregistered"
    )


async def test_refused_joins_leave_nothing_behind(
    gateway_factory: Factory, recorders: list[Recorder]
) -> None:
    """A join waits for its `subscribed` to be written; a refused one never is, and what it
    waited with stayed for as long as the connection (one per task refused)."""
    gw = await gateway_factory(unknown_task_wait_s=0)
    r = await _client(gw, recorders)
    for n in range(20):
        ack = await r.call("join", {"task_id": stable_id(f"no-such-task-{n}")})
        assert ack["error"]["code"] == "forbidden"
    sid = r.client.get_sid(namespace=NS)
    (client,) = [c for c in _sio_clients() if c.sid == sid]
    assert len(client._written) <= 1


def _namespace(gw: Harness) -> Any:
    """The gateway's `/progress` namespace (made with the first request)."""
    from ytmaker_gateway.sio.namespace import ProgressNamespace

    (found,) = [
        o for o in gc.get_objects() if type(o) is ProgressNamespace and o.gateway is gw.gateway
    ]
    return found


async def test_a_join_that_outlives_its_polling_client_leaves_nothing_registered(
    gateway_factory: Factory,
) -> None:
    """A join still waiting for its task when the client closed its polling transport (an
    Engine.IO CLOSE in a POST beside the join's) went on to register a subscription nobody
    would ever drop, holding the gone client's queue."""
    gw = await gateway_factory(unknown_task_wait_s=3.0)
    late = stable_id("sio-late-polling")
    url = "/socket.io/?EIO=4&transport=polling"
    opened = await gw.http.get(url)
    url += "&sid=" + json.loads(opened.text[1:])["sid"]
    await gw.http.post(url, content=f'40{NS},{{"token":"{gw.token()}"}}')
    assert (await gw.http.get(url)).text.startswith(f"40{NS},")
    namespace = _namespace(gw)
    join = asyncio.create_task(
        gw.http.post(url, content=f'42{NS},7["join",{{"task_id":"{late}","since":-1}}]')
    )
    await wait_until(lambda: gw.fake.asked[late] >= 2, timeout=5, what="a lookup waiting")
    await gw.http.post(url, content="1")  # Engine.IO's CLOSE
    await wait_until(lambda: not namespace.clients, timeout=5, what="the disconnect")
    gw.seed(late, n=2)
    await join  # answered once the join is done with
    assert gw.gateway.hub.stats()["subscribed_tasks"] == 0


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_a_join_that_outlives_its_transport_leaves_nothing_registered(
    gateway_factory: Factory,
    recorders: list[Recorder],
    monkeypatch: pytest.MonkeyPatch,
    transport: str,
) -> None:
    """The gateway closing the transport while a join waits for its task (the token expired,
    the client is too slow or too fast) left the join's subscription registered for good."""
    gw = await gateway_factory(unknown_task_wait_s=3.0)
    late = stable_id(f"sio-late-{transport}")
    r = Recorder()
    recorders.append(r)
    await r.connect(gw, {"token": gw.token()}, transports=[transport])
    await wait_until(lambda: r.of("connected"), timeout=5, what="connected")
    namespace = _namespace(gw)
    answered: list[Any] = []
    request = namespace.request

    async def spied(*args: Any) -> Any:
        try:
            return await request(*args)
        finally:
            answered.append(args[1])

    monkeypatch.setattr(namespace, "request", spied)
    await r.client.emit("join", {"task_id": late, "since": -1}, namespace=NS)
    await wait_until(lambda: gw.fake.asked[late] >= 2, timeout=5, what="a lookup waiting")
    await namespace.sio.drop_transport(r.client.get_sid(namespace=NS))
    await wait_until(lambda: not namespace.clients, timeout=5, what="the disconnect")
    gw.seed(late, n=2)
    await wait_until(lambda: "join" in answered, timeout=10, what="the join answered")
    assert gw.gateway.hub.stats()["subscribed_tasks"] == 0


@pytest.mark.parametrize("bad", ["t-bob", T1.upper(), "x" * 64])
async def test_recovery_refuses_a_task_id_that_is_not_one_without_looking_it_up(
    gateway_factory: Factory, recorders: list[Recorder], bad: str
) -> None:
    """Ids are UUIDs wherever a client sends one; the position string took any, and each was
    looked up and waited for (`unknown_task_wait_s`) inside the connect."""
    gw = await gateway_factory(unknown_task_wait_s=3.0)
    gw.seed(T1, n=2)
    r = Recorder()
    recorders.append(r)
    await r.connect(gw, {"token": gw.token(), "pid": "p", "offset": f"1||{T1}:-1,{bad}:-1"})
    await wait_until(lambda: r.of("connected") and r.of("error"), timeout=5, what="refusal")
    assert r.of("error")[0]["payload"]["code"] == "invalid_field"
    hello = r.of("connected")[0]["payload"]
    assert hello["recovered"] is False and hello["restored"] == []
    assert gw.fake.asked[bad] == 0


async def test_a_recovery_waits_for_all_its_tasks_at_once(
    gateway_factory: Factory, recorders: list[Recorder]
) -> None:
    """The connect looked up the tasks it restores one after another, each unknown one waited
    for up to `unknown_task_wait_s`: ten took ten waits (up to 100, minutes)."""
    wait_s = 1.0
    gw = await gateway_factory(unknown_task_wait_s=wait_s)
    offsets = gw.seed(T1, n=2)
    gone = [stable_id(f"gone-{n}") for n in range(10)]
    position = ",".join(f"{t}:-1" for t in [T1, *gone])
    r = Recorder()
    recorders.append(r)
    started = asyncio.get_running_loop().time()
    await r.connect(gw, {"token": gw.token(), "pid": "p", "offset": f"1||{position}"})
    await wait_until(lambda: len(r.of("error")) == len(gone), timeout=5, what="the refusals")
    assert asyncio.get_running_loop().time() - started < 3 * wait_s
    assert {m["task_id"] for m in r.of("error")} == set(gone)
    assert all(m["payload"]["code"] == "forbidden" for m in r.of("error"))
    assert r.of("connected")[0]["payload"]["restored"] == [T1]
    await wait_until(lambda: r.offsets(T1) == offsets, timeout=5, what="the restored task")
