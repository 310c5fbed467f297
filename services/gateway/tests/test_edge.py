"""The gateway's edge (docs/protocol.md "Limits at the edge";
docs/decisions/0041, 0042): malformed frames keep the connection, ids are checked before any
lookup, ranges give 422, bodies past the limit 413 before they are read (without a token too),
per-user limits, the token's expiry closes the socket, `/metrics` names nobody, the
development mode answers this machine only, and REST + WebSocket subscribes of one task on one
connection deliver each update once."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import connect

from tests.support.gateway import PROJECT, make_update, stable_id
from tests.support.wait import wait_until
from ytmaker_gateway.api.ws import is_stream
from ytmaker_gateway.main import refuse_anonymous_on_a_network
from ytmaker_gateway.settings import GatewaySettings

from .conftest import Factory
from .test_ws import _closed_with, _open, _recv, _refused_and_stays, _until

T1 = stable_id("t1")
VALID = {"title": "Tides", "content": "The Moon pulls.", "settings": {"language": "en"}}


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b'{"type": "ping"}', "invalid_frame"),
        (b"\x00\xff", "invalid_frame"),
        ('{"action": "subscribe", "task_id": "x", "since": ' + "7" * 5000 + "}", "invalid_json"),
        ("[" * 3000 + "]" * 3000, "invalid_json"),
        ('{"a":' * 2000 + "1" + "}" * 2000, "invalid_json"),
        (json.dumps({"action": "subscribe", "task_id": T1, "colour": "red"}), "invalid_field"),
        (json.dumps({"action": "subscribe", "task_id": "a/../../b"}), "invalid_field"),
        (json.dumps({"action": "subscribe", "task_id": T1, "since": 10**20}), "invalid_field"),
        ("", "invalid_json"),
        ("null", "invalid_message"),
    ],
)
async def test_a_malformed_frame_gets_an_error_and_the_connection_stays(
    gateway_factory: Factory, frame: str | bytes, code: str
) -> None:
    gw = await gateway_factory()
    await _refused_and_stays(gw, frame, code)


async def test_an_old_client_id_that_is_not_one_is_a_new_connection(
    gateway_factory: Factory,
) -> None:
    gw = await gateway_factory()
    ws = await _open(gw, old_client_id="../../etc")
    assert ws.hello["type"] == "connected"  # type: ignore[attr-defined]
    await ws.close()


async def test_a_path_that_leaves_the_route_is_not_found(gateway_factory: Factory) -> None:
    gw = await gateway_factory()
    gw.fake.down = True
    for path in ("/api/v1/progress/%2E%2E%2Finternal%2Fv1%2Fsessions", "/api/v1/progress/../x"):
        response = await gw.http.get(path, headers=gw.auth())
        assert response.status_code == 404, response.text


async def test_a_project_stream_with_a_malformed_id_is_refused(gateway_factory: Factory) -> None:
    gw = await gateway_factory()
    async with connect(f"{gw.ws}/api/v1/projects/not-an-id/progress?token={gw.token()}") as ws:
        assert (await _recv(ws))["payload"]["code"] == "invalid_field"
        assert await _closed_with(ws) == 1008


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/progress/T1",  # not an id
        f"/api/v1/progress/{T1.upper()}",
        f"/api/v1/progress/{T1}/history?since=99999999999999999999",
        f"/api/v1/progress/{T1}/history/db?since=99999999999999999999",
        f"/api/v1/progress/{T1}/history/db?since=-2",
        f"/api/v1/progress/{T1}/history/db?limit=0",
        f"/api/v1/progress/{T1}/history/db?limit=10001",
        f"/api/v1/progress/{T1}/history?since=1e3",
        f"/api/v1/progress/{T1}/subscribe?client_id=c-nope",
        f"/api/v1/projects/{'x' * 5000}",
    ],
)
async def test_malformed_ids_and_ranges_get_422_before_any_lookup(
    gateway_factory: Factory, path: str
) -> None:
    gw = await gateway_factory()
    gw.fake.down = True  # a lookup would answer 503: a 422 shows there was none
    method = "POST" if path.endswith("c-nope") else "GET"
    response = await gw.http.request(method, path, headers=gw.auth())
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_request"


async def test_every_settings_field_is_bounded(gateway_factory: Factory) -> None:
    gw = await gateway_factory()
    body = {**VALID, "settings": {"tags": ["x" * 65]}}
    response = await gw.http.post("/api/v1/projects", json=body, headers=gw.auth())
    assert response.status_code == 422
    body = {**VALID, "settings": {"tags": ["fine"] * 30}}
    assert (await gw.http.post("/api/v1/projects", json=body, headers=gw.auth())).status_code == 201


@pytest.mark.parametrize("with_token", [True, False])
async def test_a_body_past_the_limit_is_refused_with_413_before_it_is_read(
    gateway_factory: Factory, with_token: bool
) -> None:
    gw = await gateway_factory(max_body_bytes=4096)
    headers = gw.auth() if with_token else {}
    big = {**VALID, "content": "x" * 5000}
    declared = await gw.http.post("/api/v1/projects", json=big, headers=headers)
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "payload_too_large"
    produced = 0

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        nonlocal produced
        for _ in range(1000):
            produced += 1
            yield b" " * 1024

    streamed = await gw.http.post(
        "/api/v1/projects",
        content=chunks(),
        headers=headers | {"content-type": "application/json"},
    )
    assert streamed.status_code == 413
    assert streamed.json()["error"]["code"] == "payload_too_large"
    assert gw.producer.sent == []
    small = await gw.http.post("/api/v1/projects", json=VALID, headers=headers)
    assert small.status_code == (201 if with_token else 401)


async def test_starting_runs_past_the_users_limit_gets_429_with_retry_after(
    gateway_factory: Factory,
) -> None:
    gw = await gateway_factory(runs_burst=2, runs_per_minute=1)
    for _ in range(2):
        assert (await gw.http.post("/api/v1/projects", json=VALID, headers=gw.auth())).is_success
    refused = await gw.http.post("/api/v1/projects", json=VALID, headers=gw.auth())
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["error"]["details"]["retry_after"] == int(refused.headers["retry-after"])
    # Per user: somebody else is not held back.
    other = await gw.http.post("/api/v1/projects", json=VALID, headers=gw.auth("bob"))
    assert other.status_code == 201
    assert len(gw.producer.sent) == 3


async def test_connections_past_the_users_limit_are_refused_with_4429(
    gateway_factory: Factory,
) -> None:
    gw = await gateway_factory(max_connections_per_user=2)
    first, second = await _open(gw), await _open(gw)
    async with connect(f"{gw.ws}/api/v1/ws?token={gw.token()}") as third:
        error = await _recv(third)
        assert error["payload"]["code"] == "too_many_connections"
        assert error["payload"]["details"]["retry_after"] > 0
        assert await _closed_with(third) == 4429
    bob = await _open(gw, "bob")  # another user is not counted with alice
    await first.close()
    await wait_until(lambda: gw.gateway.sessions.open_count("alice") == 1, timeout=5)
    again = await _open(gw)
    for ws in (second, bob, again):
        await ws.close()


async def test_an_open_socket_is_closed_with_4401_when_its_token_expires(
    gateway_factory: Factory,
) -> None:
    gw = await gateway_factory(jwt_leeway_s=0)
    from ytmaker_gateway.auth import mint_token

    token = mint_token(gw.gateway.tokens, "alice", ttl_s=3)
    async with connect(f"{gw.ws}/api/v1/ws?token={token}") as ws:
        assert (await _recv(ws))["type"] == "connected"
        error = await _recv(ws, timeout=10)
        assert error["type"] == "error" and error["payload"]["code"] == "unauthorized"
        assert await _closed_with(ws) == 4401


async def test_heartbeats_go_on_until_the_token_expires(gateway_factory: Factory) -> None:
    """One clock keeps both deadlines of a socket: the pings of its heartbeat while the
    token is valid (the client answering each), then the close when it expires."""
    gw = await gateway_factory(jwt_leeway_s=0, heartbeat_interval_s=0.3)
    from ytmaker_gateway.auth import mint_token

    token = mint_token(gw.gateway.tokens, "alice", ttl_s=3)
    async with connect(f"{gw.ws}/api/v1/ws?token={token}") as ws:
        assert (await _recv(ws))["type"] == "connected"
        pings = 0
        while (received := await _recv(ws, timeout=10))["type"] == "ping":
            pings += 1
            await ws.send(json.dumps({"action": "pong"}))
        assert received["type"] == "error" and received["payload"]["code"] == "unauthorized"
        assert await _closed_with(ws) == 4401
    assert pings >= 4  # ~3 s of 0.3-s beats: about nine


async def test_metrics_name_no_user_project_or_task(gateway_factory: Factory) -> None:
    gw = await gateway_factory()
    gw.seed(T1, owner="alice-the-user", n=2)
    ws = await _open(gw, "alice-the-user")
    await ws.send(json.dumps({"action": "subscribe", "task_id": T1, "since": -1}))
    await _until(ws, "subscribed")
    text = (await gw.http.get("/metrics")).text
    assert "ytmaker_gateway_connected_clients 1.0" in text
    assert "ytmaker_gateway_project_watchers" in text
    for secret in ("alice-the-user", T1, PROJECT):
        assert secret not in text
    # The operator still sees who watches what, behind the role.
    stats = await gw.http.get("/api/v1/websocket/stats", headers=gw.auth("ops", "operator"))
    assert stats.json()["by_project"] == {PROJECT: 1}
    assert stats.json()["by_user"] == {"alice-the-user": 1}
    await ws.close()


async def test_a_rest_and_a_websocket_subscribe_of_one_task_deliver_each_update_once(
    gateway_factory: Factory,
) -> None:
    gw = await gateway_factory()
    offsets = gw.seed(T1, n=5)
    ws = await _open(gw)
    client_id = ws.hello["payload"]["client_id"]  # type: ignore[attr-defined]
    await ws.send(json.dumps({"action": "subscribe", "task_id": T1, "since": -1}))
    await _until(ws, "subscribed")
    for since in (-1, None, offsets[1]):  # each would replay something already sent
        query = "" if since is None else f"&since={since}"
        response = await gw.http.post(
            f"/api/v1/progress/{T1}/subscribe?client_id={client_id}{query}", headers=gw.auth()
        )
        assert response.status_code == 200, response.text
    await ws.send(json.dumps({"action": "subscribe", "task_id": T1, "since": -1}))
    later = gw.log.append(make_update(T1, n=9))
    await ws.send('{"type": "ping"}')
    seen: list[int] = []
    async with asyncio.timeout(5):
        while True:
            message = await _recv(ws)
            if message["type"] in ("progress", "status", "error"):
                seen.append(message["offset"])
            if message["type"] == "pong" and later in seen:
                break
    assert seen == [*offsets, later]
    await ws.close()


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({}, True),
        ({"origin": "http://127.0.0.1:5173"}, True),
        ({"origin": "http://localhost"}, True),
        ({"origin": "https://evil.example"}, False),
        ({"origin": "null"}, False),
        ({"host": "evil.example"}, False),
        ({"host": "127.0.0.1.evil.example"}, False),
        ({"host": "[::1]:8080"}, True),
    ],
)
async def test_the_development_mode_answers_this_machine_only(
    gateway_factory: Factory, headers: dict[str, str], allowed: bool
) -> None:
    gw = await gateway_factory(dev_allow_anonymous=True)
    response = await gw.http.get("/api/v1/progress/stats", headers=headers)
    assert (response.status_code == 200) is allowed, response.text
    ws_headers = {k: v for k, v in headers.items() if k == "origin"}
    if "host" in headers:
        return  # the WebSocket client sets Host itself
    async with connect(f"{gw.ws}/api/v1/ws", additional_headers=ws_headers) as ws:
        if allowed:
            assert (await _recv(ws))["type"] == "connected"
        else:
            assert await _closed_with(ws) == 4403


@pytest.mark.parametrize(
    ("host", "refused"),
    [("127.0.0.1", False), ("::1", False), ("localhost", False), ("0.0.0.0", True), ("", True)],
)
def test_the_development_mode_refuses_a_network_bind(host: str, refused: bool) -> None:
    settings = GatewaySettings(host=host, dev_allow_anonymous=True)
    if refused:
        with pytest.raises(SystemExit, match="YTMAKER_DEV_ALLOW_ANONYMOUS"):
            refuse_anonymous_on_a_network(settings)
    else:
        refuse_anonymous_on_a_network(settings)
    refuse_anonymous_on_a_network(GatewaySettings(host="0.0.0.0"))  # with tokens: any address


async def test_a_replay_far_longer_than_the_client_queue_reaches_the_client(
    gateway_factory: Factory,
) -> None:
    """Once a resume after more missed updates than the queue holds was closed with 1013
    before anything was sent, on every retry."""
    gw = await gateway_factory(client_queue_size=50, cache_updates_per_task=0, replay_page=10)
    offsets = []
    for n in range(600):
        update = make_update(T1, n=n, progress=n / 6)
        offsets.append(gw.log.append(update))
        gw.fake.record(offsets[-1], update)
    ws = await _open(gw)
    await ws.send(json.dumps({"action": "subscribe", "task_id": T1, "since": -1}))
    messages: list[dict[str, Any]] = await _until(ws, "subscribed")
    got = [(await _recv(ws))["offset"] for _ in offsets]
    assert messages[-1]["payload"]["recovered"] is True and got == offsets
    await ws.close()


@pytest.mark.parametrize("compression", [False, True], ids=["plain", "deflate"])
async def test_a_client_answering_pings_during_a_long_replay_stays(
    gateway_factory: Factory, compression: bool
) -> None:
    """Frames are read while the replay runs (they are answered after it, in order): the
    client's pongs keep it alive. ~5 MB, more than the kernel's buffers hold, read slowly
    through a small receive window: the replay lasts many heartbeat intervals. Uncompressed
    (as served by default), its end is written ahead into the socket's buffers: the client is
    still reading it, its pong behind, for many intervals after the replay is over."""
    gw = await gateway_factory(
        heartbeat_interval_s=0.15,
        client_queue_size=20,
        cache_updates_per_task=0,
        replay_page=5,
        ws_compression=compression,
    )
    offsets = []
    for n in range(1500):
        update = make_update(T1, n=n, progress=n / 15, message="x" * 3500)
        offsets.append(gw.log.append(update))
        gw.fake.record(offsets[-1], update)
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    raw.connect(("127.0.0.1", int(gw.base.rsplit(":", 1)[1])))
    ws = await connect(f"{gw.ws}/api/v1/ws?token={gw.token()}", sock=raw, max_queue=4)
    await _recv(ws)
    await ws.send(json.dumps({"action": "subscribe", "task_id": T1, "since": -1}))
    got: list[int] = []
    started = asyncio.get_running_loop().time()
    async with asyncio.timeout(60):
        while len(got) < len(offsets):
            message = await _recv(ws)
            if message["type"] == "ping":
                await ws.send('{"action": "pong"}')
            elif message["type"] == "progress":
                got.append(message["offset"])
                if len(got) % 10 == 0:
                    await asyncio.sleep(0.01)
    assert got == offsets
    assert asyncio.get_running_loop().time() - started > 4 * 0.15  # it did last
    await ws.close()


async def test_a_client_closing_during_a_long_replay_is_let_go_at_once(
    gateway_factory: Factory,
) -> None:
    """Its close is read while the replay runs: the replay stops and the session ends at
    once, not when the replay would have ended (or when the client gives up waiting for the
    closing handshake, which a client that stops reading its messages may never see)."""
    gw = await gateway_factory(client_queue_size=20, cache_updates_per_task=0, replay_page=5)
    for n in range(1500):
        update = make_update(T1, n=n, progress=n / 15, message="x" * 3500)
        gw.fake.record(gw.log.append(update), update)
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    raw.connect(("127.0.0.1", int(gw.base.rsplit(":", 1)[1])))
    ws = await connect(f"{gw.ws}/api/v1/ws?token={gw.token()}", sock=raw, max_queue=4)
    await _recv(ws)
    await ws.send(json.dumps({"action": "subscribe", "task_id": T1, "since": -1}))
    for _ in range(20):
        await _recv(ws)
    closing = asyncio.create_task(ws.close())  # it waits for the handshake (up to 10 s)
    await wait_until(lambda: not gw.gateway.sessions.active, timeout=3)
    assert gw.gateway.hub.stats()["subscribed_tasks"] == 0
    ws.transport.abort()  # this client would wait out its close timeout: no need
    await closing


@pytest.mark.parametrize(
    ("scope", "stream"),
    [
        ({"type": "websocket", "path": "/api/v1/ws"}, True),
        ({"type": "websocket", "path": f"/api/v1/projects/{PROJECT}/progress"}, True),
        ({"type": "websocket", "path": "/api/v1/projects/not-an-id/progress"}, True),
        ({"type": "websocket", "path": "/api/v1/projects/a/b/progress"}, False),
        ({"type": "websocket", "path": "/api/v1/ws/"}, False),
        ({"type": "websocket", "path": "/socket.io/"}, False),
        ({"type": "http", "path": "/api/v1/ws"}, False),
        ({"type": "websocket", "path": "/gw/api/v1/ws", "root_path": "/gw"}, True),
        ({"type": "websocket", "path": "/gwx/api/v1/ws", "root_path": "/gw"}, False),
    ],
)
def test_the_streams_are_the_paths_fastapi_routed_to_them(
    scope: dict[str, Any], stream: bool
) -> None:
    """The two WebSocket paths that skip FastAPI's routing (decision 0108) are matched as its
    routing matched them: a path parameter is one segment, a proxy's `root_path` is stripped;
    any other WebSocket path still meets the framework (and its 404)."""
    assert is_stream(scope) is stream


async def test_rest_subscribes_at_once_keep_to_the_clients_subscription_limit(
    gateway_factory: Factory,
) -> None:
    """Each checked the limit before its lookup, all of them at once passed it."""
    gw = await gateway_factory(max_subscriptions=2)
    tasks = [stable_id(f"rest-{n}") for n in range(6)]
    for task_id in tasks:
        gw.seed(task_id, n=1)
    ws = await _open(gw)
    client_id = ws.hello["payload"]["client_id"]  # type: ignore[attr-defined]
    answers = await asyncio.gather(
        *(
            gw.http.post(
                f"/api/v1/progress/{task_id}/subscribe?client_id={client_id}", headers=gw.auth()
            )
            for task_id in tasks
        )
    )
    codes = sorted(a.status_code for a in answers)
    assert codes == [200, 200, 409, 409, 409, 409], codes
    assert gw.gateway.hub.stats()["subscribed_tasks"] == 2
    await ws.close()


async def test_a_rest_subscribe_that_outlives_its_socket_leaves_nothing_registered(
    gateway_factory: Factory,
) -> None:
    """A REST subscribe still waiting for its task when the client's socket closed went on to
    register a subscription nobody would ever drop (and answered 200 for a gone client)."""
    gw = await gateway_factory(unknown_task_wait_s=3.0)
    late = stable_id("rest-late")
    ws = await _open(gw)
    client_id = ws.hello["payload"]["client_id"]  # type: ignore[attr-defined]
    request = asyncio.create_task(
        gw.http.post(f"/api/v1/progress/{late}/subscribe?client_id={client_id}", headers=gw.auth())
    )
    await wait_until(lambda: gw.fake.asked[late] >= 2, timeout=5, what="a lookup waiting")
    await ws.close()
    await wait_until(lambda: not gw.gateway.sessions.active, timeout=5, what="the close")
    gw.seed(late, n=2)
    answer = await request
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"
    assert gw.gateway.hub.stats()["subscribed_tasks"] == 0


async def test_a_project_stream_takes_no_task_subscription_over_rest(
    gateway_factory: Factory,
) -> None:
    """A project stream's `client_id` (its `connected` names one) is no client REST can
    subscribe to a task: it takes only ping and pong (docs/protocol.md "The project stream").
    The REST subscribe attached one to it anyway, and the unsubscribe wrote `unsubscribed` on
    it: both are 404, as for any client that is not a task stream here."""
    gw = await gateway_factory()
    offsets = gw.seed(T1, n=2)
    other = stable_id("t-other")
    gw.seed(other, n=1)
    async with connect(f"{gw.ws}/api/v1/projects/{PROJECT}/progress?token={gw.token()}") as ws:
        client_id = (await _recv(ws))["payload"]["client_id"]
        assert (await _recv(ws))["type"] == "initial"
        for action in ("subscribe", "unsubscribe"):
            answer = await gw.http.post(
                f"/api/v1/progress/{other}/{action}?client_id={client_id}", headers=gw.auth()
            )
            assert answer.status_code == 404, answer.text
            assert answer.json()["error"]["code"] == "not_found"
        assert gw.gateway.hub.stats()["subscribed_tasks"] == 0
        # The stream goes on as before: the project's next update, and nothing in between.
        later = gw.log.append(make_update(T1, n=5))
        await ws.send(json.dumps({"action": "ping"}))
        seen = [await _recv(ws), await _recv(ws)]
        assert sorted(m["type"] for m in seen) == ["pong", "progress"], seen
        assert [m["offset"] for m in seen if m["type"] == "progress"] == [later]
        assert later > offsets[-1]
