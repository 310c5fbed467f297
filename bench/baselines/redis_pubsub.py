"""Baseline (a), the first design "Task-012": a FastAPI WebSocket per project, pushed from Redis
Pub/Sub. A BASELINE for the benchmark, not part of ytmaker.

What it keeps from the design: the endpoint `/projects/{project_id}/progress`, the
`ConnectionManager` of active connections per project, one Redis client and one Pub/Sub
subscription per WebSocket on the channel `progress:{project_id}`, every message forwarded with
`send_json({"type": "progress", "data": data})`, `"ping"` answered with `"pong"`, and the
publisher's `ProgressManager.update_progress` (overall progress from the stage weights, then
PUBLISH of a JSON object with stage, progress, sub_progress, message, timestamp).

What it changes, and why:
- `redis.asyncio` instead of the blocking redis-py `pubsub.listen()` inside an async handler,
  which would stall the event loop on the first client (the design could not serve two);
- it subscribes before it sends `initial`, so that a client that has its `initial` misses
  nothing published afterwards (the design subscribed after, losing what came in between);
- no database: `initial` carries no stored status, and the publisher does not write a project
  row before it publishes (the benchmark measures delivery);
- `timestamp` is the wall clock (`time.time()`), not the event loop's clock, so that the
  receiver can measure latency on the machine's one clock; the publisher adds `seq`, the
  update's number within its project, so that a client can count what it lost.

    python -m bench.baselines.redis_pubsub --port 8101 --redis-url redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import time
from typing import Any

import redis.asyncio as aioredis
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

log = logging.getLogger("baseline.redis_pubsub")

STAGE_WEIGHTS = {  # the design's ProgressManager.STAGE_WEIGHTS
    "script_generating": 20,
    "images_generating": 25,
    "audio_generating": 10,
    "avatars_generating": 10,
    "rendering": 25,
    "uploading": 10,
}


def channel(project_id: str) -> str:
    return f"progress:{project_id}"


class ConnectionManager:
    """The design's manager of active connections per project."""

    def __init__(self) -> None:
        self.active_connections: dict[str, list[WebSocket]] = {}

    async def connect(self, project_id: str, websocket: WebSocket) -> None:
        await websocket.accept()
        self.active_connections.setdefault(project_id, []).append(websocket)

    def disconnect(self, project_id: str, websocket: WebSocket) -> None:
        connections = self.active_connections.get(project_id, [])
        if websocket in connections:
            connections.remove(websocket)
        if not connections:
            self.active_connections.pop(project_id, None)


def create_app(redis_url: str) -> FastAPI:
    app = FastAPI()
    manager = ConnectionManager()

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "projects": len(manager.active_connections)}

    @app.websocket("/projects/{project_id}/progress")
    async def websocket_progress(websocket: WebSocket, project_id: str) -> None:
        await manager.connect(project_id, websocket)
        client = aioredis.from_url(redis_url, decode_responses=True)  # the design's, per socket
        pubsub = client.pubsub()
        await pubsub.subscribe(channel(project_id))
        try:
            await websocket.send_json(
                {"type": "initial", "data": {"project_id": project_id, "status": None}}
            )
            forward = asyncio.create_task(_forward(pubsub, websocket))
            pings = asyncio.create_task(_answer_pings(websocket))
            _, pending = await asyncio.wait({forward, pings}, return_when="FIRST_COMPLETED")
            for task in pending:
                task.cancel()
            for task in {forward, pings}:
                with contextlib.suppress(BaseException):
                    await task
        except WebSocketDisconnect:
            pass
        finally:
            manager.disconnect(project_id, websocket)
            with contextlib.suppress(Exception):
                await pubsub.unsubscribe()
                await pubsub.aclose()  # type: ignore[no-untyped-call]
                await client.aclose()

    return app


async def _forward(pubsub: Any, websocket: WebSocket) -> None:
    """The design's `subscribe_to_project` loop: every Redis message to the socket."""
    async for message in pubsub.listen():
        if message["type"] == "message":
            data = json.loads(message["data"])
            await websocket.send_json({"type": "progress", "data": data})


async def _answer_pings(websocket: WebSocket) -> None:
    while True:
        data = await websocket.receive_text()
        if data == "ping":
            await websocket.send_text("pong")


class RedisPublisher:
    """The design's publisher side (`ProgressManager.update_progress` →
    `ProgressService.publish_progress`): what the benchmark's load generator calls."""

    def __init__(self, redis_url: str) -> None:
        # A connection per publish in flight, as many Celery workers would have.
        self.redis = aioredis.from_url(redis_url, decode_responses=True, max_connections=5000)

    async def close(self) -> None:
        await self.redis.aclose()

    async def update_progress(
        self, project_id: str, stage: str, sub_progress: float, message: str, seq: int
    ) -> None:
        total = 0.0
        for name, weight in STAGE_WEIGHTS.items():
            if name == stage:
                total += weight * (sub_progress / 100)
                break
            total += weight
        data = {
            "stage": stage,
            "progress": int(total),
            "sub_progress": sub_progress,
            "message": message,
            "timestamp": time.time(),
            "seq": seq,
        }
        await self.redis.publish(channel(project_id), json.dumps(data))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    args = parser.parse_args()
    import uvicorn

    uvicorn.run(
        create_app(args.redis_url),
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
