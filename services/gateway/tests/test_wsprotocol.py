"""The WebSocket protocol that writes a batch of messages at once (decision 0049), on a real
uvicorn server and a real client."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI, WebSocket
from websockets.asyncio.client import connect

from tests.support.gateway import start_server
from tests.support.wait import wait_until
from ytmaker_gateway.api.wsprotocol import BatchingWebSocketProtocol
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


async def test_held_messages_go_out_with_the_next_in_one_write_and_in_order() -> None:
    app = FastAPI()

    @app.websocket("/ws")
    async def endpoint(ws: WebSocket) -> None:
        await ws.accept()
        protocol = _CountingWrites.last
        assert protocol is not None
        before = len(protocol.writes)
        queue = ClientQueue(ws.send_text, maxsize=100, batch=10, send_held=held(ws))
        for n in range(7):
            queue.push(f"m{n}", None, "t1", n)
        writer = asyncio.create_task(queue.run())
        await wait_until(lambda: queue.sent == 7, timeout=10, what="the batch")
        writes = len(protocol.writes) - before
        queue.close()
        await writer
        await ws.send_text(f"{writes} writes, delivered {queue.delivered}")
        await ws.receive_text()  # until the client has read it

    def held(ws: WebSocket) -> Any:
        async def send(text: str) -> None:
            await ws.send({"type": "websocket.send", "text": text, "more": True})

        return send

    server = await start_server(app)
    server.server.config.ws_protocol_class = _CountingWrites
    try:
        async with connect(f"{server.ws}/ws") as client:
            received = [await client.recv() for _ in range(8)]
            await client.send("thanks")
        assert received == [*(f"m{n}" for n in range(7)), "1 writes, delivered {'t1': 6}"]
    finally:
        await server.stop()


async def test_without_a_batch_each_message_is_written_at_once() -> None:
    app = FastAPI()

    @app.websocket("/ws")
    async def endpoint(ws: WebSocket) -> None:
        await ws.accept()
        protocol = _CountingWrites.last
        assert protocol is not None
        before = len(protocol.writes)
        await ws.send({"type": "websocket.send", "text": "alone", "more": False})
        await ws.send_text("plain")
        await ws.send_text(f"{len(protocol.writes) - before} writes")
        await ws.receive_text()

    server = await start_server(app)
    server.server.config.ws_protocol_class = _CountingWrites
    try:
        async with connect(f"{server.ws}/ws") as client:
            received = [await client.recv() for _ in range(3)]
            await client.send("thanks")
        assert received == ["alone", "plain", "2 writes"]
    finally:
        await server.stop()
