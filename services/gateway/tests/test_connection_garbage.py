"""A closed WebSocket connection is freed by reference counting, leaving no cyclic garbage on
the server's side: the gateway's full garbage collection walks every object the process holds,
and a thousand connections a minute, each a cycle of ~180 objects kept until then, made that
walk a one-second stall (decision 0106). Each way a connection ends, on a real uvicorn server
with the gateway's protocol: the client closes, the client vanishes, the server closes."""

from __future__ import annotations

import asyncio
import gc
import json
import types
import weakref

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tests.support.gateway import PROJECT, make_update, stable_id
from tests.support.wait import wait_until

from .conftest import Factory, Harness

T1 = stable_id("t1")

#: Where the server's side of a connection comes from (the test's client is
#: `websockets.client`), beside its socket's transport.
SERVER_SIDE = ("ytmaker_gateway", "starlette", "fastapi", "uvicorn", "httpx", "websockets.server")


async def _client_closes(ws: ClientConnection) -> None:
    await ws.close()


async def _client_vanishes(ws: ClientConnection) -> None:
    ws.transport.abort()  # no close frame: the server meets a dead socket


async def _server_closes(ws: ClientConnection) -> None:
    with pytest.raises(ConnectionClosed):  # a flood of bad frames: the server closes (1008)
        for _ in range(1000):
            await ws.send("not json")
        while True:
            await ws.recv()


ENDINGS = {
    "client closes": _client_closes,
    "client vanishes": _client_vanishes,
    "server closes": _server_closes,
}


async def _session(gw: Harness, ending: str) -> None:
    """Connect, subscribe (replay and live update), end the connection, and wait until the
    server has let go of it."""
    ws = await connect(f"{gw.ws}/api/v1/ws?token={gw.token()}", max_size=None)
    await ws.recv()
    await ws.send(json.dumps({"action": "subscribe", "task_id": T1}))
    while json.loads(await ws.recv())["type"] != "subscribed":
        pass
    live = gw.log.append(make_update(T1, n=9, progress=90))
    while json.loads(await ws.recv())["offset"] != live:
        pass
    await ENDINGS[ending](ws)
    state = gw.server.server.server_state
    await wait_until(
        lambda: not state.connections and not state.tasks and not gw.gateway.sessions.by_user(),
        timeout=10,
        what="the server to let go of the connection",
    )


def _server_side(thing: object, port: int) -> bool:
    """Whether `thing` belongs to the server's side of a connection: by where its type or
    code comes from, or for a socket's transport, by its local port."""
    if isinstance(thing, weakref.ProxyTypes):
        return False  # its referent may be gone: even a look at it raises
    if isinstance(thing, types.MethodType):
        thing = thing.__self__
    if isinstance(thing, asyncio.BaseTransport):
        sockname = thing.get_extra_info("sockname")
        return bool(sockname) and sockname[1] == port
    return any(part in _origin(thing) for part in SERVER_SIDE)


def _origin(thing: object) -> str:
    """The module (or file) an object comes from: its type's, or for a function, coroutine,
    task or frame, its code's."""
    if isinstance(thing, asyncio.Task):
        thing = thing.get_coro()
    code = getattr(thing, "cr_code", None) or getattr(thing, "f_code", None)
    if code is not None:
        return str(code.co_filename)
    if isinstance(thing, types.FunctionType):
        return str(thing.__module__)
    return type(thing).__module__


@pytest.mark.parametrize("ending", ENDINGS)
async def test_a_closed_connection_leaves_no_cycles(gateway_factory: Factory, ending: str) -> None:
    gw = await gateway_factory()
    port = int(gw.ws.rsplit(":", 1)[1])
    gw.seed(T1, n=3)
    await _session(gw, ending)  # the first one also builds what every connection shares
    gc.collect()
    gc.set_debug(gc.get_debug() | gc.DEBUG_SAVEALL)
    try:
        gc.garbage.clear()
        for _ in range(3):
            await _session(gw, ending)
        gc.collect()
        left = [
            f"{type(thing).__qualname__} from {_origin(thing)}"
            for thing in gc.garbage
            if _server_side(thing, port)
        ]
    finally:
        gc.set_debug(gc.get_debug() & ~gc.DEBUG_SAVEALL)
        gc.garbage.clear()
    assert not left, left


def _framework_coroutines() -> list[str]:
    """Suspended coroutines of FastAPI's and Starlette's routing, middleware and endpoint
    wrappers alive in this process (not the `WebSocket.receive` a connection awaits)."""
    return sorted(
        thing.__qualname__
        for thing in gc.get_objects()
        if type(thing) is types.CoroutineType
        and thing.cr_frame is not None
        and any(part in thing.cr_code.co_filename for part in ("/starlette/", "/fastapi/"))
        and not thing.cr_code.co_filename.endswith("/starlette/websockets.py")
    )


async def test_an_open_connection_holds_none_of_the_frameworks_frames(
    gateway_factory: Factory,
) -> None:
    """What an open connection keeps alive, every full collection walks (decision 0108): its
    own tasks and socket, not FastAPI's routing and middleware suspended around it, nor the
    handshake, for as long as it is open. Both streams, subscribed and receiving."""
    gw = await gateway_factory()
    gw.seed(T1, n=3)
    before = _framework_coroutines()
    sockets = []
    for _ in range(3):
        ws = await connect(f"{gw.ws}/api/v1/ws?token={gw.token()}", max_size=None)
        await ws.recv()
        await ws.send(json.dumps({"action": "subscribe", "task_id": T1}))
        while json.loads(await ws.recv())["type"] != "subscribed":
            pass
        sockets.append(ws)
    project = await connect(
        f"{gw.ws}/api/v1/projects/{PROJECT}/progress?token={gw.token()}", max_size=None
    )
    sockets.append(project)
    live = gw.log.append(make_update(T1, n=9, progress=90))
    for ws in sockets:
        while json.loads(await ws.recv()).get("offset") != live:
            pass
    try:
        assert _framework_coroutines() == before
        protocols = gw.server.server.server_state.connections
        assert len(protocols) == len(sockets)
        # Nor the handshake's request and response, with their headers, once written.
        held = [v for p in protocols for v in vars(p).values() if isinstance(v, Request | Response)]
        assert not held, held
    finally:
        for ws in sockets:
            await ws.close()
