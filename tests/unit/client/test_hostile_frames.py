"""The SDK's live client against frames no gateway should send (docs/protocol.md: the shapes
are the schema's): each is skipped or taken as a refusal, and the subscription still gets every
update once, in order. None may kill the connection's background task (a silent hang)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from ytmaker_client import ClientOptions, ConnectionLost, ProgressClient, Update

from .fake_gateway import collect, run_log

FAST = ClientOptions(
    backoff_base=0.05,
    backoff_cap=0.2,
    retry_delay=0.05,
    heartbeat_interval=1.0,
    heartbeat_timeout=10.0,
)


#: The gateway's first frame on a new connection.
GREETING = json.dumps(
    {
        "type": "connected",
        "task_id": None,
        "offset": None,
        "payload": {"client_id": "c1", "heartbeat_interval": 30},
    }
)


def _refusal(details: Any) -> str:
    return json.dumps(
        {
            "type": "error",
            "task_id": "t1",
            "offset": None,
            "payload": {"code": "unavailable", "message": "try again", "details": details},
        }
    )


HOSTILE = {
    "nested too deep for a recursive parser": "[" * 100_000 + "]" * 100_000,
    "a refusal whose details are null": _refusal(None),
    "a refusal whose details are a string": _refusal("oops"),
    "a refusal whose details are a list": _refusal([1, 2]),
}


@pytest.mark.parametrize("frame", list(HOSTILE.values()), ids=list(HOSTILE))
async def test_a_hostile_frame_before_the_replay_neither_hangs_nor_loses_updates(
    frame: str,
) -> None:
    log = run_log("t1", 5)
    subscribes: list[Any] = []

    async def handle(ws: ServerConnection) -> None:
        await ws.send(GREETING)
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                request = json.loads(raw)
                if request.get("action") != "subscribe":
                    continue
                subscribes.append(request.get("since"))
                if len(subscribes) == 1:
                    await ws.send(frame)
                    if "error" in frame[:20]:
                        continue  # a refusal: the subscription is not made
                since = request.get("since")
                await ws.send(
                    json.dumps(
                        {
                            "type": "subscribed",
                            "task_id": "t1",
                            "offset": None,
                            "payload": {
                                "task_id": "t1",
                                "offset": None,
                                "epoch": "E1",
                                "recovered": True,
                            },
                        }
                    )
                )
                for item in log:
                    if since is None or item["offset"] > since:
                        await ws.send(json.dumps(item))

    async def follow(url: str) -> list[Any]:
        async with ProgressClient(url, options=FAST) as client:
            got: list[Any] = await collect(await client.subscribe_task("t1"), timeout=10)
        return got

    async with serve(handle, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        items = await asyncio.wait_for(follow(f"http://127.0.0.1:{port}"), 15)
    assert [i.offset for i in items if isinstance(i, Update)] == [u["offset"] for u in log]


def test_options_a_heartbeat_cannot_keep_are_refused_at_once() -> None:
    """A heartbeat timeout not longer than its interval was refused only inside the
    connection's background task, where nobody saw it: `connect()` never returned."""
    with pytest.raises(ValueError, match="heartbeat"):
        ClientOptions(heartbeat_timeout=10.0)  # the interval is 15 s
    with pytest.raises(ValueError, match="backoff"):
        ClientOptions(backoff_cap=0.5)


async def test_a_first_connection_closed_before_its_greeting_is_raised_not_retried() -> None:
    """docs/sdk-python.md: the first connection must succeed; `connect()` raises
    `ConnectionLost` rather than retry for ever when the gateway closes it before `connected`."""
    connections = 0

    async def handle(ws: ServerConnection) -> None:
        nonlocal connections
        connections += 1
        await ws.close(1011, "internal error")

    async with serve(handle, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        client = ProgressClient(f"http://127.0.0.1:{port}", options=FAST)
        with pytest.raises(ConnectionLost, match="1011"):
            await asyncio.wait_for(client.connect(), 5)
        await asyncio.wait_for(client.close(), 5)
    assert connections == 1


async def test_a_server_that_talks_but_never_greets_fails_the_first_connect() -> None:
    """A WebSocket that is not the gateway's (an echo service at a wrong URL) answers every
    ping, so the heartbeat never finds it silent: `connect()` waited for `connected` for ever.
    No greeting within `open_timeout` fails the first connection, as TypeScript's
    `connectionTimeoutMs` does."""

    async def echo(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                await ws.send(raw)

    options = ClientOptions(
        open_timeout=0.5, heartbeat_interval=0.1, heartbeat_timeout=0.3, backoff_base=0.05
    )
    async with serve(echo, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        client = ProgressClient(f"http://127.0.0.1:{port}", options=options)
        with pytest.raises(ConnectionLost, match="connected"):
            await asyncio.wait_for(client.connect(), 5)
        await asyncio.wait_for(client.close(), 5)


async def test_a_stray_snapshot_behind_the_stream_repeats_nothing() -> None:
    """A snapshot nobody asked for (no `recovered: false` before it) at an offset already
    delivered, then that offset's successors again (a buggy gateway, a proxy replaying): they
    were delivered twice, as the snapshot moved the cursor back. TypeScript drops them."""
    log = run_log("t1", 5)  # offsets 0 … 8

    async def handle(ws: ServerConnection) -> None:
        await ws.send(GREETING)
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                if json.loads(raw).get("action") != "subscribe":
                    continue
                answer = {"task_id": "t1", "offset": None, "epoch": "E1", "recovered": True}
                await ws.send(
                    json.dumps(
                        {"type": "subscribed", "task_id": "t1", "offset": None, "payload": answer}
                    )
                )
                for item in log[:3]:  # 0, 2, 4
                    await ws.send(json.dumps(item))
                stray = {**log[0]["payload"], "status": "running"}
                await ws.send(
                    json.dumps({"type": "snapshot", "task_id": "t1", "offset": 0, "payload": stray})
                )
                for item in log[1:]:  # 2, 4 again, then 6, 8
                    await ws.send(json.dumps(item))

    async with serve(handle, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with ProgressClient(f"http://127.0.0.1:{port}", options=FAST) as client:
            items = await collect(await client.subscribe_task("t1"), timeout=10)
    assert [i.offset for i in items if isinstance(i, Update)] == [u["offset"] for u in log]
