"""The channel's own bookkeeping: what it starts in the background outlives a garbage
collection, and a task subscribed again after an unsubscribe delivers only its new stream.

The event loop keeps only weak references to tasks (Python docs, `asyncio.create_task`): a task
nothing else holds is collected while it waits, and what it was doing never happens. Here the
wait is on a future only the task holds, the case the loop does not protect."""

from __future__ import annotations

import asyncio
import gc
import json
import weakref
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from tests.support.wait import wait_until
from ytmaker_client import ClientOptions, ConnectionLost, ProgressClient, Update
from ytmaker_client.channel import Channel
from ytmaker_client.protocol import PING_FRAME

from .fake_gateway import FakeGateway, Script, collect, update

FAST = ClientOptions(backoff_base=0.05, backoff_cap=0.2, retry_delay=0.05)


def _ws(url: str) -> str:
    return url.replace("http://", "ws://") + "/api/v1/ws"


async def test_a_send_in_flight_survives_a_garbage_collection() -> None:
    script = Script([])
    async with FakeGateway(script) as gw:
        channel = Channel(_ws(gw.url), None, FAST, name="t", on_state=lambda _c: None)
        await channel.start()
        held: list[weakref.ref[asyncio.Future[None]]] = []
        waiting = asyncio.Event()
        real_send = channel._send

        async def held_send(frame: str) -> None:  # waits on what only this task holds
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            held.append(weakref.ref(future))
            waiting.set()
            await future
            await real_send(frame)

        channel._send = held_send  # type: ignore[method-assign]
        try:
            channel._send_soon(PING_FRAME)
            await asyncio.wait_for(waiting.wait(), 5)
            gc.collect()
            future = held[0]()
            assert future is not None, "the send was garbage-collected while it waited"
            future.set_result(None)
            await wait_until(lambda: script.pings >= 1, timeout=5, what="the ping")
        finally:
            await channel.close()


async def test_the_on_connected_hook_survives_a_garbage_collection() -> None:
    held: list[weakref.ref[asyncio.Future[None]]] = []
    waiting, finished = asyncio.Event(), asyncio.Event()

    async def hook() -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        held.append(weakref.ref(future))
        waiting.set()
        await future
        finished.set()

    async with FakeGateway(Script([])) as gw:
        channel = Channel(
            _ws(gw.url), None, FAST, name="t", on_state=lambda _c: None, on_connected=hook
        )
        await channel.start()
        try:
            await asyncio.wait_for(waiting.wait(), 5)
            gc.collect()
            future = held[0]()
            assert future is not None, "the hook was garbage-collected while it waited"
            future.set_result(None)
            await asyncio.wait_for(finished.wait(), 5)
        finally:
            await channel.close()


def _msg(kind: str, payload: dict[str, Any], task_id: str | None = None) -> str:
    offset = payload.get("offset") if kind == "subscribed" else None
    return json.dumps({"type": kind, "task_id": task_id, "offset": offset, "payload": payload})


async def test_a_task_subscribed_again_after_unsubscribe_gets_its_replay_in_order() -> None:
    """The old subscription's updates still in flight when the client unsubscribes arrive
    before `unsubscribed` and the new `subscribed`: they are not the new stream's, and must
    not move its cursor past the replay it asked for."""
    live = [update("t1", o, o) for o in (0, 2, 4, 6, 8)]
    done = update("t1", 10, 100.0, "completed")
    subscribes: list[Any] = []

    async def handle(ws: ServerConnection) -> None:
        await ws.send(_msg("connected", {"client_id": "c0", "heartbeat_interval": 30}))
        async for frame in ws:
            request = json.loads(frame)
            action = request.get("action")
            if action == "subscribe":
                since = request.get("since")
                subscribes.append(since)
                answer = {"task_id": "t1", "offset": None if since == -1 else since}
                answer |= {"epoch": "E1", "recovered": True, "restored": False}
                await ws.send(_msg("subscribed", answer, "t1"))
                if len(subscribes) == 1:  # the first subscription: live up to 4
                    for item in live[:3]:
                        await ws.send(json.dumps(item))
                else:  # the replay after `since`, then what follows
                    for item in [*live, done]:
                        if item["offset"] > since:
                            await ws.send(json.dumps(item))
            elif action == "unsubscribe":
                # Live updates queued for the old subscription before the gateway read the
                # unsubscribe go out first.
                for item in live[3:]:
                    await ws.send(json.dumps(item))
                await ws.send(_msg("unsubscribed", {"task_id": "t1"}, "t1"))

    async with serve(handle, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with ProgressClient(f"http://127.0.0.1:{port}", options=FAST) as client:
            first = await client.subscribe_task("t1")
            seen = []
            async for item in first:
                seen.append(item)
                if isinstance(item, Update) and item.offset == 4:
                    break
            await first.unsubscribe()
            again = await client.subscribe_task("t1", since=2, epoch="E1")
            items = await collect(again, timeout=5)
    assert subscribes == [-1, 2]
    assert [i.offset for i in items if isinstance(i, Update)] == [4, 6, 8, 10]


async def test_close_while_the_first_connect_waits_ends_the_connect() -> None:
    """`close()` (a shutdown, a cancel button) while `connect()` waits for the greeting:
    `connect()` never returned, as nothing settled what it waits on."""
    accepted = asyncio.Event()

    async def mute(ws: ServerConnection) -> None:
        accepted.set()
        await ws.wait_closed()

    async with serve(mute, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        client = ProgressClient(f"http://127.0.0.1:{port}", options=FAST)
        connecting = asyncio.create_task(client.connect())
        await asyncio.wait_for(accepted.wait(), 5)
        await asyncio.wait_for(client.close(), 5)
        with pytest.raises(ConnectionLost, match="closed"):
            await asyncio.wait_for(connecting, 5)
