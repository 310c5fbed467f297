"""Baseline (b), the first design "task 13.1": python-socketio rooms with join/leave and
progress events. A BASELINE for the benchmark, not part of ytmaker.

What it keeps from the design: the namespace `/progress`; `connected {client_id}` on connect;
`join {task_id}` enters the task's room and sends the task's current progress; `leave` leaves
it; `ping` → `pong {timestamp}`; `cancel_task`; a `ProgressManager` that holds every task's
state (status, progress 0–100, message, details) and emits each update as a `progress` event
to the task's room (`{task_id, status, progress, message, details, timestamp}`).

What it changes, and why:
- python-socketio's ASGI server under uvicorn (uvloop, the same WebSocket implementation as
  ytmaker's gateway) instead of Flask-SocketIO's threads: the benchmark compares asyncio
  servers, and Flask-SocketIO is python-socketio underneath;
- the publisher runs in another process (the load generator), like ytmaker's stages and the
  Redis design's workers: it connects as a Socket.IO client with the publisher token and sends
  `publish` events, which call `ProgressManager.update_progress` here, which emits to the room
  as in the design. `details` carries `seq` (the update's number within its task) and
  `produced_at` (when the publisher made it) for the benchmark's count and clock.

    BENCH_SOCKETIO_PUBLISHER_TOKEN=... python -m bench.baselines.socketio_rooms --port 8102
"""

from __future__ import annotations

import argparse
import hmac
import os
import time
from typing import Any

import socketio

NAMESPACE = "/progress"
STATUSES = frozenset(
    {"pending", "started", "generating_content", "generating_image", "completed", "failed"}
    | {"cancelled"}
)


class ProgressManager:
    """The design's progress manager: every task's state, each update emitted to its room."""

    def __init__(self, sio: socketio.AsyncServer) -> None:
        self.sio = sio
        self.tasks: dict[str, dict[str, Any]] = {}

    def get(self, task_id: str) -> dict[str, Any] | None:
        return self.tasks.get(task_id)

    async def update_progress(
        self,
        task_id: str,
        progress: float,
        status: str | None = None,
        message: str = "",
        details: dict[str, Any] | None = None,
    ) -> None:
        task = self.tasks.setdefault(task_id, {"task_id": task_id, "status": "pending"})
        if task["status"] == "cancelled":
            return  # a cancelled task sends no more progress (13.1.3)
        task.update(
            progress=max(0.0, min(100.0, progress)),
            status=status if status in STATUSES else task["status"],
            message=message,
            details=details or {},
            timestamp=time.time(),
        )
        await self.sio.emit("progress", task, room=task_id, namespace=NAMESPACE)

    async def cancel_task(self, task_id: str) -> bool:
        task = self.tasks.get(task_id)
        if task is None or task["status"] in ("completed", "failed", "cancelled"):
            return False
        await self.update_progress(task_id, task.get("progress", 0), "cancelled", "cancelled")
        return True


class SocketIOHandlers(socketio.AsyncNamespace):  # type: ignore[misc]
    """The design's `SocketIOHandlers`: connect, disconnect, join, leave, ping, cancel_task;
    plus `publish`, the benchmark's publisher side (the business code's `update_progress`)."""

    def __init__(self, manager: ProgressManager, publisher_token: str) -> None:
        super().__init__(NAMESPACE)
        self.manager = manager
        self.publisher_token = publisher_token
        self.publishers: set[str] = set()
        self.clients: dict[str, dict[str, Any]] = {}  # connections and their rooms

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        token = auth.get("publisher_token") if isinstance(auth, dict) else None
        if isinstance(token, str) and hmac.compare_digest(token, self.publisher_token):
            self.publishers.add(sid)
        self.clients[sid] = {"connected_at": time.time(), "rooms": set()}
        await self.emit("connected", {"client_id": sid}, to=sid)

    async def on_disconnect(self, sid: str, *_: Any) -> None:
        self.publishers.discard(sid)
        self.clients.pop(sid, None)

    async def on_join(self, sid: str, data: Any) -> None:
        task_id = data.get("task_id") if isinstance(data, dict) else None
        if not isinstance(task_id, str):
            await self.emit("error", {"message": "task_id required"}, to=sid)
            return
        await self.enter_room(sid, task_id)
        self.clients.get(sid, {}).setdefault("rooms", set()).add(task_id)
        current = self.manager.get(task_id)
        if current is not None:  # the design sends the current progress on join
            await self.emit("progress", current, to=sid)
        await self.emit("joined", {"task_id": task_id}, to=sid)

    async def on_leave(self, sid: str, data: Any) -> None:
        task_id = data.get("task_id") if isinstance(data, dict) else None
        if isinstance(task_id, str):
            await self.leave_room(sid, task_id)
            self.clients.get(sid, {}).get("rooms", set()).discard(task_id)

    async def on_ping(self, sid: str, *_: Any) -> None:
        await self.emit("pong", {"timestamp": time.time()}, to=sid)

    async def on_cancel_task(self, sid: str, data: Any) -> None:
        task_id = data.get("task_id") if isinstance(data, dict) else None
        ok = isinstance(task_id, str) and await self.manager.cancel_task(task_id)
        await self.emit("cancel_result", {"task_id": task_id, "cancelled": ok}, to=sid)

    async def on_publish(self, sid: str, data: Any) -> None:
        if sid not in self.publishers or not isinstance(data, dict):
            return
        await self.manager.update_progress(
            data["task_id"],
            float(data.get("progress", 0)),
            data.get("status"),
            str(data.get("message", "")),
            data.get("details"),
        )


def create_app(publisher_token: str) -> tuple[socketio.AsyncServer, Any]:
    sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins="*")
    sio.register_namespace(SocketIOHandlers(ProgressManager(sio), publisher_token))
    return sio, socketio.ASGIApp(sio)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    token = os.environ.get("BENCH_SOCKETIO_PUBLISHER_TOKEN")
    if not token:
        parser.error("set BENCH_SOCKETIO_PUBLISHER_TOKEN (the publisher's shared secret)")
    import uvicorn

    _, app = create_app(token)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )


if __name__ == "__main__":
    main()
