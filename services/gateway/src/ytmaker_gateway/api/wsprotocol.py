"""uvicorn's WebSocket protocol, able to write a batch of messages to the socket at once.

uvicorn writes every `websocket.send` to its socket as it comes: one `write` system call per
message, which on loopback also runs the receiver's side of TCP and wakes the receiver. A
client that is behind (a replay, a burst) gets its messages in batches from its writer
(`ClientQueue`); this protocol lets the writer mark all but the last message of a batch with
`"more": True`, holds those frames, and writes them with the last one in one call
(docs/decisions/0049-one-write-per-batch.md). Another ASGI server ignores the key and writes
each message at once: the same bytes on the wire, only more calls.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

_STATE = ("conn", "handshake_complete", "close_sent", "initial_response", "disconnected")


class BatchingWebSocketProtocol(WebSocketsSansIOProtocol):
    """`{"type": "websocket.send", "text": ..., "more": True}` is framed now and written with
    the next message (or ping, or close) that this connection writes."""

    async def send(self, message: Any) -> None:
        if (
            message.get("more")
            and message["type"] == "websocket.send"
            and self.handshake_complete
            and not self.close_sent
            and self.initial_response is None
        ):
            if self.disconnected:
                raise ClientDisconnected()
            text, data = message.get("text"), message.get("bytes")
            if text is not None:
                self.conn.send_text(text.encode())
                return
            if data is not None:
                self.conn.send_binary(data)
                return
        await super().send(message)


def _check() -> None:
    """Fail at import, not silently, should uvicorn's protocol change what this relies on."""
    probe = WebSocketsSansIOProtocol.__init__.__code__.co_names
    missing = [name for name in _STATE if name not in probe]
    if missing:
        raise RuntimeError(f"uvicorn's WebSocketsSansIOProtocol lacks {missing}: see 0049")


_check()
