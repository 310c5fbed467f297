"""uvicorn's WebSocket protocol, able to write a batch of messages to the socket at once.

uvicorn writes every `websocket.send` to its socket as it comes: one `write` system call per
message, which on loopback also runs the receiver's side of TCP and wakes the receiver. A
client that is behind (a replay, a burst) gets its messages in batches from its writer
(`ClientQueue`); this protocol lets the writer mark all but the last message of a batch with
`"more": True`, holds those frames, and writes them with the last one in one call
(docs/decisions/0049-one-write-per-batch.md). Another ASGI server ignores the key and writes
each message at once: the same bytes on the wire, only more calls.

It also offers the application a way around ASGI for its updates (decision 0101): the scope
extension `EXTENSION` holds `write_now`, a plain function that frames text messages and writes
them at once, where a `websocket.send` goes through every middleware's `send`, the protocol's and
the websockets library's framing, one coroutine each, per message. It writes only what the
library would have written itself: final, unmasked text frames, on an open connection without
extensions (a compressed connection's frames differ, and go through ASGI). Beside it, `backlog`
tells how much of what was written the client has not taken yet (the heartbeat's judge of a
client that reads but cannot have answered yet).
"""

from __future__ import annotations

import fcntl
import struct
import termios
from collections.abc import Sequence
from typing import Any

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

#: The scope extension: `{"write_now": ..., "backlog": ...}` (the methods below).
EXTENSION = "ytmaker.websocket"

_STATE = ("conn", "handshake_complete", "close_sent", "initial_response", "disconnected")


class BatchingWebSocketProtocol(WebSocketsSansIOProtocol):
    """`{"type": "websocket.send", "text": ..., "more": True}` is framed now and written with
    the next message (or ping, or close) that this connection writes."""

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)  # None: the handshake was refused
        if scope is not None:
            scope["extensions"][EXTENSION] = {
                "write_now": self.write_now,
                "backlog": self.backlog,
            }

    def connection_lost(self, exc: Exception | None) -> None:
        """Let the connection be freed by its reference count, not by the garbage collector's
        full pass, which walks every object the process holds (decision 0106): empty the
        extension (its methods in its own scope are a reference cycle), and drop the
        transport's read callback, a bound method of the transport itself, as Python 3.12
        does on close (python/cpython#100348; 3.11 keeps it)."""
        super().connection_lost(exc)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"].get(EXTENSION, {}).clear()
        if getattr(self.transport, "_read_ready_cb", None) is not None:
            self.transport._read_ready_cb = None  # type: ignore[attr-defined] # read no more

    def write_now(self, texts: Sequence[str]) -> bool:
        """Write `texts` as text messages after what is held, in one call; False, and nothing
        written, when this connection cannot take them so: not open, its writes paused by the
        socket's flow control, or with an extension that changes the frames."""
        if (
            self.disconnected
            or self.close_sent
            or not self.handshake_complete
            or self.initial_response is not None
            or not self.writable.is_set()
            or self.transport.is_closing()
            or self.conn.state is not State.OPEN
            or self.conn.extensions
        ):
            return False
        self.transport.write(b"".join([*self.conn.data_to_send(), *map(text_frame, texts)]))
        return True

    def backlog(self) -> int:
        """Bytes written to this connection that the client has not taken: in the transport's
        buffer, and in the kernel's send queue (not yet acknowledged by the client's side)."""
        queued: int = self.transport.get_write_buffer_size()
        sock = self.transport.get_extra_info("socket")
        if sock is None:
            return queued
        try:
            answer = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
        except OSError:  # closed meanwhile
            return queued
        unsent: int = struct.unpack("i", answer)[0]
        return queued + unsent

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
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # Read no more once the handshake is written: the request and the response, with
            # their headers ~10 objects, would stay as long as the socket (decision 0108).
            self.request = self.response = None  # type: ignore[assignment]


def text_frame(text: str) -> bytes:
    """A final, unmasked text frame (RFC 6455, section 5.2): what a server sends, the same
    bytes for every client."""
    data = text.encode()
    size = len(data)
    if size < 126:
        return bytes((0x81, size)) + data
    if size < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, size) + data
    return struct.pack("!BBQ", 0x81, 127, size) + data


def _check() -> None:
    """Fail at import, not silently, should uvicorn's protocol change what this relies on."""
    probe = WebSocketsSansIOProtocol.__init__.__code__.co_names
    missing = [name for name in (*_STATE, "writable") if name not in probe]
    if missing:
        raise RuntimeError(f"uvicorn's WebSocketsSansIOProtocol lacks {missing}: see 0049")


_check()
