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


def create_app(publisher_token: str) -> tuple[socketio.AsyncServer, Any]:
    sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins="*")
    manager = ProgressManager(sio)
    publishers: set[str] = set()
    clients: dict[str, dict[str, Any]] = {}  # the design's record of connections and rooms

    @sio.on("connect", namespace=NAMESPACE)
    async def on_connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        token = auth.get("publisher_token") if isinstance(auth, dict) else None
        if isinstance(token, str) and hmac.compare_digest(token, publisher_token):
            publishers.add(sid)
        clients[sid] = {"connected_at": time.time(), "rooms": set()}
        await sio.emit("connected", {"client_id": sid}, to=sid, namespace=NAMESPACE)

    @sio.on("disconnect", namespace=NAMESPACE)
    async def on_disconnect(sid: str, *_: Any) -> None:
        publishers.discard(sid)
        clients.pop(sid, None)

    @sio.on("join", namespace=NAMESPACE)
    async def on_join(sid: str, data: Any) -> None:
        task_id = data.get("task_id") if isinstance(data, dict) else None
        if not isinstance(task_id, str):
            await sio.emit("error", {"message": "task_id required"}, to=sid, namespace=NAMESPACE)
            return
        await sio.enter_room(sid, task_id, namespace=NAMESPACE)
        clients.get(sid, {}).setdefault("rooms", set()).add(task_id)
        current = manager.get(task_id)
        if current is not None:  # the design sends the current progress on join
            await sio.emit("progress", current, to=sid, namespace=NAMESPACE)
        await sio.emit("joined", {"task_id": task_id}, to=sid, namespace=NAMESPACE)

    @sio.on("leave", namespace=NAMESPACE)
    async def on_leave(sid: str, data: Any) -> None:
        task_id = data.get("task_id") if isinstance(data, dict) else None
        if isinstance(task_id, str):
            await sio.leave_room(sid, task_id, namespace=NAMESPACE)
            clients.get(sid, {}).get("rooms", set()).discard(task_id)

    @sio.on("ping", namespace=NAMESPACE)
    async def on_ping(sid: str, *_: Any) -> None:
        await sio.emit("pong", {"timestamp": time.time()}, to=sid, namespace=NAMESPACE)

    @sio.on("cancel_task", namespace=NAMESPACE)
    async def on_cancel_task(sid: str, data: Any) -> None:
        task_id = data.get("task_id") if isinstance(data, dict) else None
        ok = isinstance(task_id, str) and await manager.cancel_task(task_id)
        await sio.emit(
            "cancel_result", {"task_id": task_id, "cancelled": ok}, to=sid, namespace=NAMESPACE
        )

    @sio.on("publish", namespace=NAMESPACE)
    async def on_publish(sid: str, data: Any) -> None:
        """The benchmark's publisher side: the business code's `update_progress` call."""
        if sid not in publishers or not isinstance(data, dict):
            return
        await manager.update_progress(
            data["task_id"],
            float(data.get("progress", 0)),
            data.get("status"),
            str(data.get("message", "")),
            data.get("details"),
        )

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
