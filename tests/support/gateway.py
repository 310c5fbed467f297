"""Test doubles for the gateway's neighbours, shared by its unit tests, integration tests,
reliability tests and the replay benchmark (bench/replay_resume.py): a small in-memory fake of
the progress service's internal API (services/progress/API.md), the log in memory (`FakeLog`),
a producer that records events, update builders, and a gateway served in this event loop.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse

from tests.support.wait import wait_until
from ytmaker_gateway.adapters.progress_api import ProgressApi
from ytmaker_gateway.api.wsprotocol import BatchingWebSocketProtocol
from ytmaker_gateway.fanout.delivery import BAD_RECORDS, delivery_from_record, key_mismatch
from ytmaker_gateway.fanout.replay import Page
from ytmaker_gateway.main import build
from ytmaker_shared.events import DecodeError, Event
from ytmaker_shared.progress import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    ProgressUpdate,
    TaskState,
    TaskStatus,
    UpdateType,
)
from ytmaker_shared.stages import Stage
from ytmaker_shared.topics import Topic


def stable_id(name: str) -> str:
    """An id of the form the system issues (a lowercase UUID), the same for the same `name`:
    tests name their tasks and projects readably and still pass the gateway's id checks."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"ytmaker-test:{name}"))


#: The project of `make_state` and `make_update` unless a test names another.
PROJECT = stable_id("p1")


def make_state(
    task_id: str,
    *,
    owner: str = "alice",
    project_id: str = PROJECT,
    status: TaskStatus = TaskStatus.RUNNING,
    progress: float = 0.0,
    offset: int | None = None,
    epoch: str | None = None,
    **fields: Any,
) -> TaskState:
    return TaskState(
        task_id=task_id,
        project_id=project_id,
        owner=owner,
        title=fields.pop("title", "A title"),
        status=status,
        progress=progress,
        offset=offset,
        epoch=epoch,
        **fields,
    )


def make_update(
    task_id: str,
    *,
    owner: str = "alice",
    project_id: str = PROJECT,
    progress: float = 0.0,
    status: TaskStatus = TaskStatus.RUNNING,
    kind: UpdateType = UpdateType.PROGRESS,
    n: int = 0,
    occurred_at: datetime | None = None,
    **fields: Any,
) -> ProgressUpdate:
    """One update as the progress service writes it (the n-th of its task)."""
    return ProgressUpdate(
        type=kind,
        task_id=task_id,
        project_id=project_id,
        owner=owner,
        event_id=f"{task_id}-e{n}",
        event_type="stage.progress",
        occurred_at=occurred_at or datetime.now(UTC),
        state=make_state(
            task_id,
            owner=owner,
            project_id=project_id,
            status=status,
            progress=progress,
            stage=Stage.SCRIPT,
            message=fields.pop("message", f"step {n}"),
            **fields,
        ),
    )


@dataclass
class RecordingProducer:
    """Records what the gateway sends instead of writing it to Kafka."""

    sent: list[tuple[Topic, Event]] = field(default_factory=list)

    async def send(self, topic: Topic, event: Event) -> None:
        self.sent.append((topic, event))


@dataclass
class FakeProgress:
    """The read model's state, editable by tests; `app()` serves it like the real service."""

    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    projects: dict[str, dict[str, Any]] = field(default_factory=dict)
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    down: bool = False
    catching_up: bool = False
    #: How many times each task was looked up (a caller waiting for the read model asks again).
    asked: Counter[str] = field(default_factory=Counter)

    def put_task(self, state: TaskState) -> None:
        data = state.model_dump(mode="json")
        self.tasks[state.task_id] = data
        project = self.projects.setdefault(
            state.project_id,
            {
                "project_id": state.project_id,
                "owner": state.owner,
                "title": state.title,
                "content": "Some content.",
                "settings": {"language": "en"},
                "created_at": None,
            },
        )
        project["owner"] = state.owner

    def record(self, offset: int, update: ProgressUpdate, epoch: str | None = None) -> None:
        """Fold an update as the real service would: history plus the latest state."""
        self.history.setdefault(update.task_id, []).append(
            {"offset": offset, "epoch": epoch, "update": update.model_dump(mode="json")}
        )
        self.put_task(update.state.model_copy(update={"offset": offset, "epoch": epoch}))

    def app(self) -> FastAPI:
        app = FastAPI()
        fake = self

        def unavailable() -> JSONResponse | None:
            if fake.down:
                return JSONResponse({"error": {"code": "down"}}, status_code=503)
            return None

        def not_found() -> JSONResponse:
            return JSONResponse({"error": {"code": "not_found", "message": "no"}}, 404)

        @app.get("/readyz")
        async def readyz() -> Any:
            if fake.down or fake.catching_up:
                return JSONResponse({"status": "starting"}, status_code=503)
            return {"status": "ready"}

        @app.get("/internal/v1/tasks/{task_id}")
        async def task(task_id: str) -> Any:
            if (down := unavailable()) is not None:
                return down
            return fake.tasks.get(task_id) or not_found()

        @app.post("/internal/v1/tasks/lookup")
        async def lookup(body: dict[str, list[str]]) -> Any:
            if (down := unavailable()) is not None:
                return down
            fake.asked.update(body["task_ids"])
            return {"items": [fake.tasks[t] for t in body["task_ids"] if t in fake.tasks]}

        @app.get("/internal/v1/tasks")
        async def tasks(owner: str | None = None, project_id: str | None = None) -> Any:
            items = [
                t
                for t in fake.tasks.values()
                if (owner is None or t["owner"] == owner)
                and (project_id is None or t["project_id"] == project_id)
            ]
            return {"items": items}

        @app.get("/internal/v1/projects/{project_id}")
        async def project(project_id: str) -> Any:
            if (down := unavailable()) is not None:
                return down
            found = fake.projects.get(project_id)
            if found is None:
                return not_found()
            tasks = [t for t in fake.tasks.values() if t["project_id"] == project_id]
            tasks.sort(key=lambda t: t["task_id"], reverse=True)
            return {"project": found, "tasks": tasks}

        @app.get("/internal/v1/tasks/{task_id}/history")
        async def history(
            task_id: str, source: str = "memory", limit: int = 100, since: int | None = None
        ) -> Any:
            if task_id not in fake.tasks:
                return not_found()
            items = [
                i for i in fake.history.get(task_id, []) if since is None or i["offset"] > since
            ]
            return {"task_id": task_id, "source": source, "items": items[:limit]}

        @app.delete("/internal/v1/tasks/{task_id}/history")
        async def delete_history(task_id: str) -> Any:
            state = fake.tasks.get(task_id)
            if state is None:
                return not_found()
            if state["status"] not in TERMINAL_STATUSES:
                return JSONResponse(
                    {"error": {"code": "conflict", "message": "the task is still running"}}, 409
                )
            fake.history.pop(task_id, None)
            return Response(status_code=204)

        @app.get("/internal/v1/stats")
        async def stats(owner: str | None = None) -> Any:
            mine = [t for t in fake.tasks.values() if owner is None or t["owner"] == owner]

            def count(statuses: frozenset[TaskStatus]) -> int:
                return sum(1 for t in mine if t["status"] in statuses)

            return {
                "total_tasks": len(mine),
                "active_tasks": count(ACTIVE_STATUSES),
                "completed_tasks": count(frozenset({TaskStatus.COMPLETED})),
                "failed_tasks": count(frozenset({TaskStatus.FAILED})),
                "cancelled_tasks": count(frozenset({TaskStatus.CANCELLED})),
                "stages": {},
            }

        @app.post("/internal/v1/sessions")
        async def save_session(record: dict[str, Any]) -> Any:
            fake.sessions[record["client_id"]] = record
            return record

        @app.post("/internal/v1/sessions/batch")
        async def save_sessions(batch: dict[str, Any]) -> Any:
            for record in batch["items"]:
                fake.sessions[record["client_id"]] = record
            return {"stored": len(batch["items"])}

        @app.get("/internal/v1/sessions")
        async def sessions(active: bool | None = None) -> Any:
            items = [
                s
                for s in fake.sessions.values()
                if active is None or (s.get("disconnected_at") is None) == active
            ]
            return {"items": items}

        return app


class FakeLog:
    """`progress.updates` in memory, for tests without a broker: `append` writes a record and
    (unless `deliver=False`) hands it to the hub as its consumer would; it also serves as the
    hub's replay reader (`bounds`, `offset_at`, `read`)."""

    def __init__(self, hub: Any, partitions: int = 4) -> None:
        self.hub = hub
        self.records: dict[int, list[tuple[int, bytes, bytes, int]]] = {
            p: [] for p in range(partitions)
        }
        self.log_start: dict[int, int] = dict.fromkeys(range(partitions), 0)
        self.reads = 0
        self.scanned = 0
        hub.positions = dict.fromkeys(range(partitions), 0)
        hub.start_positions = dict.fromkeys(range(partitions), 0)
        hub.ready.set()

    def append(self, update: ProgressUpdate, *, deliver: bool = True, ts_ms: int = 0) -> int:
        return self.append_raw(
            update.task_id, update.model_dump_json().encode(), deliver=deliver, ts_ms=ts_ms
        )

    def append_raw(
        self,
        task_id: str,
        value: bytes | None,
        *,
        deliver: bool = True,
        ts_ms: int = 0,
        partition: int | None = None,
        key: bytes | None = None,
    ) -> int:
        """Write any bytes (a bad record too) as a record keyed by the task (or by `key`), in
        its partition or in `partition` (a producer that chose another: a hostile writer)."""
        if partition is None:
            partition = self.hub.partition_of(task_id)
        if key is None:
            key = task_id.encode()
        records = self.records[partition]
        offset = records[-1][0] + 1 if records else 0
        records.append((offset, key, value, ts_ms))  # type: ignore[arg-type]
        if deliver:
            self.hub.dispatch(partition, offset, key, value)
        return offset

    def deliver_pending(self) -> None:
        """Hand the hub every record it has not seen yet (a lagging consumer catching up)."""
        for partition, records in self.records.items():
            for offset, key, value, _ in records:
                if offset >= self.hub.positions[partition]:
                    self.hub.dispatch(partition, offset, key, value)

    async def bounds(self, partition: int) -> tuple[int, int]:
        records = self.records[partition]
        return self.log_start[partition], (records[-1][0] + 1 if records else 0)

    async def offset_at(self, partition: int, timestamp_ms: int) -> int | None:
        for offset, _, _, ts in self.records[partition]:
            if ts >= timestamp_ms and offset >= self.log_start[partition]:
                return offset
        return None

    async def page(
        self, task_id: str, partition: int, first: int, end: int, epoch: str | None, limit: int
    ) -> Any:
        """As ReplayReader.page: at least `limit` of the task's updates from `first` (fewer at
        `end`), bad records (and records keyed by the task holding another task's update)
        counted and skipped; `scanned` counts the records looked at."""
        self.reads += 1
        items: list[Any] = []
        for offset, key, value, _ in self.records[partition]:
            if offset < max(first, self.log_start[partition]):
                continue
            if offset >= end or len(items) >= limit:
                return Page(items, min(offset, end))
            self.scanned += 1
            if key == task_id.encode():
                try:
                    delivery = delivery_from_record(partition, offset, value, epoch)
                    if delivery.task_id != task_id:
                        raise key_mismatch(task_id, delivery.task_id)
                except DecodeError as exc:
                    BAD_RECORDS.skip("progress.updates", partition, offset, exc, "replay")
                else:
                    items.append(delivery)
        return Page(items, end)

    async def warm_up(self) -> None:
        return None

    async def close(self) -> None:
        return None


@dataclass
class RunningServer:
    """A gateway app served by uvicorn in this event loop (tests and benchmarks only)."""

    base: str
    ws: str
    server: Any
    task: asyncio.Task[None]

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task


async def start_server(
    app: Any, max_frame_bytes: int = 64 * 1024, *, compression: bool = False
) -> RunningServer:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        ws=BatchingWebSocketProtocol,  # as the gateway's main serves it
        ws_max_size=max_frame_bytes,
        ws_per_message_deflate=compression,  # as main: YTMAKER_WS_COMPRESSION, off by default
        log_level="warning",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await wait_until(lambda: server.started or task.done(), timeout=10, what="the server")
    if task.done():
        task.result()
    return RunningServer(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}", server, task)


def build_gateway(
    settings: Any, progress_app: Any, producer: Any, reader: Any | None = None
) -> Any:
    """A Gateway wired by main.build, but reading the given fake progress app in-process."""
    progress = ProgressApi("http://progress", transport=httpx.ASGITransport(app=progress_app))
    return build(settings, producer, progress=progress, reader=reader)
