"""The WebSocket protocol that writes a batch of messages at once (decision 0049), on a real
uvicorn server and a real client."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, WebSocket
from websockets.asyncio.client import connect

from tests.support.gateway import start_server
from tests.support.wait import wait_until
from ytmaker_gateway.api.wsprotocol import EXTENSION, BatchingWebSocketProtocol
from ytmaker_gateway.fanout.client_queue import ClientQueue


class _CountingWrites(BatchingWebSocketProtocol):
    """Counts what the connection writes to its socket after the handshake."""

    last: _CountingWrites | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        _CountingWrites.last = self
        self.writes: list[bytes] = []
        write = transport.write

        def counted(data: bytes) -> None:
            self.writes.append(bytes(data))
            write(data)

        transport.write = counted


async def _written(
    scenario: Callable[[WebSocket], Awaitable[None]], *, compression: bool = False
) -> tuple[list[str], int]:
    """Serve `scenario` on a real uvicorn with the batching protocol to a real client (both
    offering permessage-deflate if `compression`): what the client received, and how many
    writes to the socket the scenario took."""
    writes: list[int] = []
    app = FastAPI()

    @app.websocket("/ws")
    async def endpoint(ws: WebSocket) -> None:
        await ws.accept()
        protocol = _CountingWrites.last
        assert protocol is not None
        before = len(protocol.writes)
        await scenario(ws)
        writes.append(len(protocol.writes) - before)
        await ws.send_text("done")
        await ws.receive_text()  # until the client has read everything

    server = await start_server(app, compression=compression)
    server.server.config.ws_protocol_class = _CountingWrites
    received: list[str] = []
    try:
        async with connect(
            f"{server.ws}/ws", compression="deflate" if compression else None, max_size=None
        ) as client:
            while not received or received[-1] != "done":
                received.append(str(await client.recv()))
            await client.send("thanks")
    finally:
        await server.stop()
    return received[:-1], writes[0]


async def test_held_messages_go_out_with_the_next_in_one_write_and_in_order() -> None:
    async def batch_of_seven(ws: WebSocket) -> None:
        async def held(text: str) -> None:
            await ws.send({"type": "websocket.send", "text": text, "more": True})

        queue = ClientQueue(ws.send_text, maxsize=100, batch=10, send_held=held)
        for n in range(7):
            queue.push(f"m{n}")
        writer = asyncio.create_task(queue.run())
        await wait_until(lambda: queue.sent == 7, timeout=10, what="the batch")
        queue.close()
        await writer

    received, writes = await _written(batch_of_seven)
    assert received == [f"m{n}" for n in range(7)]
    assert writes == 1


async def test_without_a_batch_each_message_is_written_at_once() -> None:
    async def two_messages(ws: WebSocket) -> None:
        await ws.send({"type": "websocket.send", "text": "alone", "more": False})
        await ws.send_text("plain")

    assert await _written(two_messages) == (["alone", "plain"], 2)


def _write_now(ws: WebSocket) -> Callable[[list[str]], bool]:
    write: Callable[[list[str]], bool] = ws.scope["extensions"][EXTENSION]["write_now"]
    return write


async def test_write_now_frames_messages_of_every_length_after_the_held_ones_in_one_write() -> None:
    texts = ["a", "é" * 100, "x" * 70_000]  # a 7-bit, a 16-bit and a 64-bit payload length
    answers: list[bool] = []

    async def held_then_now(ws: WebSocket) -> None:
        await ws.send({"type": "websocket.send", "text": "held", "more": True})
        answers.append(_write_now(ws)(texts))

    received, writes = await _written(held_then_now)
    assert answers == [True]
    assert received == ["held", *texts] and writes == 1


async def test_write_now_declines_a_compressed_connection_which_asgi_still_serves() -> None:
    answers: list[bool] = []

    async def now_then_asgi(ws: WebSocket) -> None:
        answers.append(_write_now(ws)(["now"]))
        await ws.send_text("through asgi")

    received, writes = await _written(now_then_asgi, compression=True)
    assert answers == [False]
    assert received == ["through asgi"] and writes == 1


async def test_backlog_is_what_the_client_has_not_taken_yet() -> None:
    """Written ahead of a client that does not read: the backlog holds it; read, it is gone."""
    backlogs: list[int] = []
    app = FastAPI()

    @app.websocket("/ws")
    async def endpoint(ws: WebSocket) -> None:
        await ws.accept()
        server = ws.scope["extensions"][EXTENSION]
        assert server["write_now"](["y" * 60_000] * 50)  # 3 MB, more than a socket buffers
        backlogs.append(server["backlog"]())
        await ws.receive_text()  # the client has read it all
        backlogs.append(server["backlog"]())

    server = await start_server(app)
    try:
        async with connect(f"{server.ws}/ws", compression=None, max_size=None) as client:
            await wait_until(lambda: backlogs, timeout=10, what="the write")
            for _ in range(50):
                assert len(await client.recv()) == 60_000
            await client.send("read")
            await wait_until(lambda: len(backlogs) == 2, timeout=10, what="the answer")
    finally:
        await server.stop()
    assert backlogs[0] > 1_000_000 and backlogs[1] == 0
