"""Socket.IO (protocol 5) over Engine.IO 4, WebSocket transport only: the few frames the
benchmark's clients and publisher need, on the same `websockets` client as the other targets,
so that every target's clients cost the same to run.

    0{...}                 Engine.IO open (server)
    40/progress,{auth}     connect to the namespace (client) → 40/progress,{"sid"} (server)
    42/progress,[name, data]  an event, either way
    2 / 3                  Engine.IO ping (server) / pong (client)
"""

from __future__ import annotations

import json
from typing import Any

from websockets.asyncio.client import ClientConnection

from bench.baselines.socketio_rooms import NAMESPACE

PING, PONG = "2", "3"
EVENT_PREFIX = f"42{NAMESPACE},"
CONNECT_PREFIX = f"40{NAMESPACE},"


def engine_url(base: str) -> str:
    """`ws://host:port` → the Engine.IO WebSocket endpoint."""
    return f"{base.rstrip('/')}/socket.io/?EIO=4&transport=websocket"


def event_frame(name: str, data: Any) -> str:
    return EVENT_PREFIX + json.dumps([name, data], separators=(",", ":"))


def parse_event(frame: str) -> tuple[str, Any] | None:
    """(name, data) of an event frame of the namespace; None for any other frame."""
    if not frame.startswith(EVENT_PREFIX):
        return None
    name, *rest = json.loads(frame[len(EVENT_PREFIX) :])
    return name, rest[0] if rest else None


async def handshake(ws: ClientConnection, auth: dict[str, Any] | None = None) -> list[str]:
    """Open the Engine.IO session and connect to the namespace. Returns the frames that came
    after the namespace's connect acknowledgement (events the caller must still handle)."""
    opened = await ws.recv()
    if not isinstance(opened, str) or not opened.startswith("0"):
        raise ConnectionError(f"not an Engine.IO open packet: {opened!r:.80}")
    await ws.send(CONNECT_PREFIX + (json.dumps(auth) if auth else ""))
    while True:
        frame = await ws.recv()
        assert isinstance(frame, str)
        if frame == PING:
            await ws.send(PONG)
        elif frame.startswith(CONNECT_PREFIX):
            return []
        elif frame.startswith(f"44{NAMESPACE},"):
            raise ConnectionError(f"namespace connect refused: {frame:.120}")
