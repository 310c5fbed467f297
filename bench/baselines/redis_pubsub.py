"""Baseline (a), the first design "Task-012": a FastAPI WebSocket per project, pushed from Redis
Pub/Sub. A BASELINE for the benchmark, not part of ytmaker.

What it keeps from the design: the endpoint `/projects/{project_id}/progress`, the
`ConnectionManager` of active connections per project, one Redis client and one Pub/Sub
subscription per WebSocket on the channel `progress:{project_id}`, `initial` with the project's
stored status (`ProgressService.get_project_status`), every message forwarded with
`send_json({"type": "progress", "data": data})`, `"ping"` answered with `"pong"`, and the
publisher's `ProgressManager.update_progress`: overall progress from the stage weights, the
project's row updated and committed through a SQLAlchemy session of its own (`SessionLocal()`,
`query(Project).filter(...).update(...)`, `commit()`, `close()`), then PUBLISH of a JSON object
with stage, progress, sub_progress, message, timestamp. The database is SQLite in WAL, as
ytmaker's read model is by default.

What it changes, and why:
- `redis.asyncio` instead of the blocking redis-py `pubsub.listen()` inside an async handler,
  which would stall the event loop on the first client (the design could not serve two);
- it subscribes before it sends `initial`, so that a client that has its `initial` misses
  nothing published afterwards (the design subscribed after, losing what came in between);
- one pooled Redis client for the publisher, where the design made a client (and so a
  connection) per update;
- `timestamp` is the wall clock (`time.time()`) when `update_progress` is called, before the
  row is written, not the event loop's clock when it publishes, so that the receiver measures
  from the moment the stage reports, on the machine's one clock, as it does for ytmaker; the
  publisher adds `seq`, the update's number within its project, so that a client can count
  what it lost;
- without `--database-url` (the benchmark's `redis-nodb` target, and every run before 4
  December 2026) there is no database: `initial` carries no stored status and the publisher
  writes no row (docs/decisions/0114).

    python -m bench.baselines.redis_pubsub --port 8101 --redis-url redis://127.0.0.1:6379/0 \
        [--database-url sqlite:////tmp/design.sqlite3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from sqlalchemy import DateTime, Integer, String, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

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


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Project(Base):
    """The design's `app.models.project.Project`: the columns its progress path reads and writes."""

    __tablename__ = "projects"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(32))
    progress: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=_now, onupdate=_now)


def session_factory(database_url: str) -> sessionmaker[Session]:
    """The design's `SessionLocal`, on a SQLite file in WAL with ytmaker's read-model pragmas."""
    engine = create_engine(database_url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    Base.metadata.create_all(engine)
    return sessionmaker(engine)


def get_project_status(db: Session, project_id: str) -> dict[str, Any]:
    """The design's `ProgressService.get_project_status`."""
    project = db.query(Project).filter(Project.id == project_id).first()
    if not project:
        raise ValueError(f"Project {project_id} not found")
    return {
        "project_id": project_id,
        "status": project.status,
        "progress": project.progress,
        "updated_at": project.updated_at.isoformat(),
    }


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


def create_app(redis_url: str, database_url: str | None = None) -> FastAPI:
    app = FastAPI()
    manager = ConnectionManager()
    sessions = session_factory(database_url) if database_url else None

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
            status: dict[str, Any] = {"project_id": project_id, "status": None}
            if sessions is not None:  # the design's blocking query, in the handler
                with sessions() as db:
                    status = get_project_status(db, project_id)
            await websocket.send_json({"type": "initial", "data": status})
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
        except ValueError:  # no such project: the design logs it and lets the socket go
            log.info("no project %s", project_id)
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
    `ProgressService.publish_progress`): what the benchmark's load generator calls.

    The row is written with the design's blocking session calls, as its Celery task does:
    each update holds the publisher's event loop for as long as its commit takes."""

    def __init__(self, redis_url: str, database_url: str | None = None) -> None:
        # A connection per publish in flight, as many Celery workers would have.
        self.redis = aioredis.from_url(redis_url, decode_responses=True, max_connections=5000)
        self.sessions = session_factory(database_url) if database_url else None

    def create_projects(self, project_ids: list[str]) -> None:
        """The rows the design's API made when each project was created."""
        if self.sessions is None:
            return
        with self.sessions() as db:
            for project_id in project_ids:
                db.merge(Project(id=project_id, status="pending", progress=0))
            db.commit()

    async def close(self) -> None:
        await self.redis.aclose()

    async def update_progress(
        self, project_id: str, stage: str, sub_progress: float, message: str, seq: int
    ) -> None:
        reported = time.time()
        total = 0.0
        for name, weight in STAGE_WEIGHTS.items():
            if name == stage:
                total += weight * (sub_progress / 100)
                break
            total += weight
        progress = int(total)
        if self.sessions is not None:
            db = self.sessions()
            db.query(Project).filter(Project.id == project_id).update(
                {"progress": progress, "status": stage}
            )
            db.commit()
            db.close()
        data = {
            "stage": stage,
            "progress": progress,
            "sub_progress": sub_progress,
            "message": message,
            "timestamp": reported,
            "seq": seq,
        }
        await self.redis.publish(channel(project_id), json.dumps(data))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--database-url", help="the design's database (none: no rows)")
    args = parser.parse_args()
    import uvicorn

    uvicorn.run(
        create_app(args.redis_url, args.database_url),
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
