"""A scripted stand-in for the gateway's WebSocket (docs/protocol.md), for the SDK's unit tests of
what a real gateway does only under load or failure: close with 1013, go silent, refuse a
token or a subscription, lose history (`recovered: false`). Real websockets on localhost.

The integration and end-to-end tests run the SDK against the real gateway."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

TERMINAL = ("completed", "failed", "cancelled")


def state(task_id: str, offset: int, progress: float, status: str = "running") -> dict[str, Any]:
    return {
        "task_id": task_id,
        "project_id": "p1",
        "owner": "alice",
        "title": "T",
        "status": status,
        "progress": progress,
        "stages": {},
        "offset": offset,
        "epoch": "E1",
    }


def update(task_id: str, offset: int, progress: float, status: str = "running") -> dict[str, Any]:
    kind = "status" if status in TERMINAL else "progress"
    payload = state(task_id, offset, progress, status) | {
        "event_id": f"ev-{offset}",
        "event_type": "stage.progress",
        "occurred_at": "2025-01-01T00:00:00Z",
    }
    return {"type": kind, "task_id": task_id, "offset": offset, "payload": payload}


def run_log(task_id: str, n: int) -> list[dict[str, Any]]:
    """n updates at offsets 0..n-1 (spaced by 2, as other tasks share the partition); the
    last one completes the task."""
    out = [update(task_id, 2 * i, 100.0 * i / (n - 1)) for i in range(n - 1)]
    out.append(update(task_id, 2 * (n - 1), 100.0, "completed"))
    return out


@dataclass
class Script:
    """What the fake does, per connection (0-based index of the connection)."""

    log: list[dict[str, Any]]
    close_after: dict[int, tuple[int, int]] = field(default_factory=dict)  # conn → (n, code)
    silent_after: dict[int, int] = field(default_factory=dict)  # conn → n: then say nothing
    refuse: dict[int, int] = field(default_factory=dict)  # conn → subscribes refused first
    refuse_code: str = "forbidden"
    lost_until: dict[int, int] = field(default_factory=dict)  # conn → snapshot at offset
    auth_close: bool = False
    close_at_greeting: set[int] = field(default_factory=set)
    subscribes: list[tuple[int, Any, Any]] = field(default_factory=list)  # (conn, since, epoch)
    ping_after_log: float | None = None  # the timestamp of a ping sent after the whole log
    # conn → (the tasks `reconnected` lists, the `subscribed` payloads of the streams restored,
    # each followed by the log after its offset); only for a connection with `old_client_id`
    restore: dict[int, tuple[list[str], list[dict[str, Any]]]] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)  # each connection's request path
    unsubscribes: list[tuple[int, str]] = field(default_factory=list)  # (conn, task)
    pongs: list[dict[str, Any]] = field(default_factory=list)  # the client's answers
    pings: int = 0
    connections: int = 0


class FakeGateway:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.server: Server | None = None
        self.url = ""

    async def __aenter__(self) -> FakeGateway:
        self.server = await serve(self._handle, "127.0.0.1", 0)
        port = next(iter(self.server.sockets)).getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, ws: ServerConnection) -> None:
        s = self.script
        conn = s.connections
        s.connections += 1
        if s.auth_close:
            await ws.close(4401, "missing bearer token")
            return
        s.paths.append(ws.request.path if ws.request is not None else "")
        if conn in s.restore and "old_client_id=" in s.paths[-1]:
            await self._restore(ws, conn)
        else:
            greeting = {"client_id": f"c{conn}", "heartbeat_interval": 30}
            await ws.send(_msg("connected", greeting))
        if conn in s.close_at_greeting:
            await ws.close(1001, "going away")
            return
        sent = 0
        refused = 0
        with contextlib.suppress(ConnectionClosed):
            async for frame in _frames(ws):
                request = json.loads(frame)
                action = request.get("action", request.get("type"))
                if action == "ping":
                    s.pings += 1
                    if conn in s.silent_after and sent >= s.silent_after[conn]:
                        continue
                    await ws.send(_msg("pong", {"timestamp": 0}))
                    continue
                if action == "pong":
                    s.pongs.append(request)
                    continue
                if action == "unsubscribe":
                    s.unsubscribes.append((conn, request["task_id"]))
                    continue
                if action != "subscribe":
                    continue
                task_id, since = request["task_id"], request.get("since")
                s.subscribes.append((conn, since, request.get("epoch")))
                if refused < s.refuse.get(conn, 0):
                    refused += 1
                    await ws.send(
                        json.dumps(
                            {
                                "type": "error",
                                "task_id": task_id,
                                "offset": None,
                                "payload": {"code": s.refuse_code, "message": "no", "details": {}},
                            }
                        )
                    )
                    continue
                after = -1 if since is None else since
                recovered = since is not None
                snapshot_at = s.lost_until.get(conn)
                if snapshot_at is not None:
                    recovered, after = False, snapshot_at
                await ws.send(
                    _msg(
                        "subscribed",
                        {
                            "task_id": task_id,
                            "offset": after,
                            "epoch": "E1",
                            "recovered": recovered,
                        },
                        task_id,
                    )
                )
                if not recovered:
                    await ws.send(
                        _msg("snapshot", state(task_id, after, 50.0), task_id, offset=after)
                    )
                for item in s.log:
                    if item["offset"] <= after:
                        continue
                    if conn in s.close_after and sent >= s.close_after[conn][0]:
                        await ws.close(s.close_after[conn][1], "too slow: resume")
                        return
                    if conn in s.silent_after and sent >= s.silent_after[conn]:
                        break
                    await ws.send(json.dumps(item))
                    sent += 1
                if s.ping_after_log is not None:
                    await ws.send(_msg("ping", {"timestamp": s.ping_after_log}))

    async def _restore(self, ws: ServerConnection, conn: int) -> None:
        """`reconnected`, then each restored stream: its `subscribed`, the log after it."""
        tasks, restored = self.script.restore[conn]
        old = ws.request.path.split("old_client_id=", 1)[1] if ws.request is not None else ""
        greeting = {"client_id": f"c{conn}", "old_client_id": old, "subscribed": tasks}
        await ws.send(_msg("reconnected", greeting | {"heartbeat_interval": 30}))
        for payload in restored:
            task_id = payload["task_id"]
            await ws.send(_msg("subscribed", payload | {"restored": True}, task_id))
            after = payload.get("offset")
            if after is not None and type(after) is not int:
                continue  # a hostile offset: nothing follows it
            for item in self.script.log:
                if item["task_id"] == task_id and (after is None or item["offset"] > after):
                    await ws.send(json.dumps(item))


async def _frames(ws: ServerConnection) -> AsyncIterator[str | bytes]:
    async for frame in ws:
        yield frame


def _msg(
    kind: str, payload: dict[str, Any], task_id: str | None = None, offset: int | None = None
) -> str:
    return json.dumps({"type": kind, "task_id": task_id, "offset": offset, "payload": payload})


async def collect(subscription: Any, timeout: float = 10.0) -> list[Any]:
    items: list[Any] = []

    async def run() -> None:
        async for item in subscription:
            items.append(item)

    await asyncio.wait_for(run(), timeout)
    return items
