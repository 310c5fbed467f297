"""How a client of each target connects, subscribes to one task and reads an update.

`Wire.open` connects and subscribes, and returns once the server confirmed the subscription,
with the frames that came after the confirmation (the client still handles them). `parse`
turns a frame into `(seq, produced_at, offset)` for an update (offset -1 where the target has
none; seq -1 for an update that no bench publisher made, e.g. ytmaker's `task.requested`), and
None for anything else. `reply` is what the client must send back to a frame (pings), if any.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from datetime import datetime
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from bench.harness import sio

Parsed = tuple[int, float, int]
CONNECT = {"compression": None, "ping_interval": None, "max_queue": None, "open_timeout": 30}


def bearer(token: str) -> dict[str, str]:
    """The header a ytmaker client sends its token in (never the URL: decision 0133)."""
    return {"Authorization": f"Bearer {token}"}


class SubscribeRefused(ConnectionError):
    """The server answered the subscription with an error (retry later)."""


class Wire(ABC):
    name: str
    resumes = False  # True: a reconnect asks for what was missed (by offset)

    @abstractmethod
    async def open(self, task_id: str, since: int | None) -> tuple[ClientConnection, list[str]]:
        """Connect and subscribe to `task_id`; `since`: the last offset seen (resumes)."""

    @abstractmethod
    def parse(self, frame: str) -> Parsed | None: ...

    def reply(self, frame: str) -> str | None:
        return None


class YtmakerWire(Wire):
    """docs/protocol.md: `/api/v1/ws` with the token in the `Authorization` header, as the
    Python SDK connects; `subscribe {task_id, since}` → `subscribed`."""

    name = "ytmaker"
    resumes = True

    def __init__(self, base: str, token: str) -> None:
        self.url = f"{base}/api/v1/ws"
        self.headers = bearer(token)

    async def open(self, task_id: str, since: int | None) -> tuple[ClientConnection, list[str]]:
        ws = await connect(self.url, additional_headers=self.headers, **CONNECT)  # type: ignore[arg-type]
        try:
            await ws.recv()  # connected
            await ws.send(json.dumps({"action": "subscribe", "task_id": task_id, "since": since}))
            while True:
                frame = str(await ws.recv())
                message = orjson.loads(frame)
                if message["type"] == "subscribed":
                    return ws, []
                if message["type"] == "error":
                    raise SubscribeRefused(str(message["payload"]))
        except BaseException:
            await ws.close()
            raise

    def parse(self, frame: str) -> Parsed | None:
        message = orjson.loads(frame)
        if message["type"] not in ("progress", "status", "error"):
            return None
        payload: dict[str, Any] = message["payload"]
        offset = int(message["offset"])
        if payload.get("event_type") != "stage.progress":  # requested, started, an ETA, ...
            return -1, 0.0, offset
        produced = datetime.fromisoformat(payload["occurred_at"]).timestamp()
        return int(payload["completed_steps"]), produced, offset

    def reply(self, frame: str) -> str | None:
        return '{"type":"ping"}' if frame.startswith('{"type":"ping"') else None


class RedisWire(Wire):
    """The Task-012 design: one WebSocket per project; `initial`, then `progress`."""

    name = "redis"

    def __init__(self, base: str) -> None:
        self.base = base

    async def open(self, task_id: str, since: int | None) -> tuple[ClientConnection, list[str]]:
        ws = await connect(f"{self.base}/projects/{task_id}/progress", **CONNECT)  # type: ignore[arg-type]
        try:
            first = orjson.loads(await ws.recv())
            if first.get("type") != "initial":
                raise SubscribeRefused(f"expected initial, got {first!r:.80}")
            return ws, []
        except BaseException:
            await ws.close()
            raise

    def parse(self, frame: str) -> Parsed | None:
        message = orjson.loads(frame)
        if message.get("type") != "progress":
            return None
        data = message["data"]
        return int(data["seq"]), float(data["timestamp"]), -1


class SocketioWire(Wire):
    """The task 13.1 design: namespace `/progress`, `join {task_id}`, `progress` events."""

    name = "socketio"

    def __init__(self, base: str) -> None:
        self.url = sio.engine_url(base)

    async def open(self, task_id: str, since: int | None) -> tuple[ClientConnection, list[str]]:
        ws = await connect(self.url, **CONNECT)  # type: ignore[arg-type]
        try:
            early = await sio.handshake(ws)
            await ws.send(sio.event_frame("join", {"task_id": task_id}))
            while True:
                frame = str(await ws.recv())
                event = sio.parse_event(frame)
                if event is not None and event[0] == "joined":
                    return ws, early
                early.append(frame)  # `connected`, the current progress sent on join, pings
        except BaseException:
            await ws.close()
            raise

    def parse(self, frame: str) -> Parsed | None:
        event = sio.parse_event(frame)
        if event is None or event[0] != "progress":
            return None
        details = event[1]["details"]
        return int(details["seq"]), float(details["produced_at"]), -1

    def reply(self, frame: str) -> str | None:
        return sio.PONG if frame == sio.PING else None
