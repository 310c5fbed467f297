"""The publisher side of each target, as its design publishes progress: what the load generator
(`bench/harness/producer.py`) drives.

- ytmaker: a stage's `stage.progress` event (a pydantic `StageProgressed`, as
  `ytmaker_shared.stageworker` makes it from a `StageProgressPayload`) written to
  `pipeline.script` with `ytmaker_shared.kafka.EventProducer.send`;
- redis: `RedisPublisher.update_progress` of the baseline: the project's row written, then
  PUBLISH to `progress:{project}` (redis-nodb: the PUBLISH alone);
- socketio: a `publish` event to the baseline server, whose `ProgressManager` emits to the room.

Every update carries `seq`, its number within its task (1, 2, ...), so that a client counts what
it lost or got twice, and the time it was made, so that the client measures latency on the
machine's one clock. For ytmaker both are the event's own fields: `completed_steps` and
`occurred_at`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from abc import ABC, abstractmethod
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from bench.baselines.redis_pubsub import RedisPublisher as RedisDesignPublisher
from bench.harness import sio
from ytmaker_shared.events import (
    StageProgressed,
    StageProgressPayload,
    StageStarted,
    StageStartedPayload,
    TaskRequested,
    TaskRequestedPayload,
)
from ytmaker_shared.kafka import EventProducer
from ytmaker_shared.settings import ServiceSettings
from ytmaker_shared.stages import Stage
from ytmaker_shared.topics import Topic

#: `total_steps` of the bench's stage: progress grows by 0.01 % per 100 updates, so that it
#: never reaches 100 however long a run is; every event changes `completed_steps`, so every
#: event is a visible change and makes one update.
TOTAL_STEPS = 1_000_000
MESSAGE = "writing the script"


def percent(completed: int, total: int) -> float:
    """`completed / total` as 0..100 with two decimals, as a stage reports its progress."""
    return round(max(0.0, min(100.0, 100.0 * completed / total)), 2) if total > 0 else 0.0


class Publisher(ABC):
    """One target's publisher. `start()` before use, `stop()` after."""

    async def start(self) -> None:  # noqa: B027 - most publishers need no start
        pass

    async def stop(self) -> None:  # noqa: B027
        pass

    async def prepare(self, owner: str, tasks: list[str]) -> None:  # noqa: B027
        """Make the tasks exist where the design needs them to (ytmaker: requested, script
        stage started). Others need nothing."""

    @abstractmethod
    async def publish(self, task_id: str, seq: int) -> None:
        """Publish update `seq` of `task_id` now, the way the design publishes progress."""

    async def burst(self, task_id: str, seqs: range) -> None:
        """Publish `seqs` of one task as fast as the design allows, in order."""
        for seq in seqs:
            await self.publish(task_id, seq)


def requested(task_id: str, owner: str) -> TaskRequested:
    """The `task.requested` the gateway would have written for a bench task."""
    return TaskRequested(
        task_id=task_id,
        project_id=f"p-{task_id}",
        owner=owner,
        producer="bench-gateway",
        correlation_id=task_id,
        payload=TaskRequestedPayload(title=f"Bench {task_id}", content="bench"),
    )


def started(request: TaskRequested, instance: str) -> StageStarted:
    """The script stage's `stage.started` for the run `request` asked for."""
    return request.caused(
        StageStarted,
        producer=f"script-{instance}",
        stage=Stage.SCRIPT,
        payload=StageStartedPayload(),
    )


def progressed(request: TaskRequested, seq: int, instance: str) -> StageProgressed:
    """Update `seq` of the run: the script stage's `stage.progress` with `seq` steps done."""
    return request.caused(
        StageProgressed,
        producer=f"script-{instance}",
        stage=Stage.SCRIPT,
        payload=StageProgressPayload(
            progress=percent(seq, TOTAL_STEPS),
            message=MESSAGE,
            completed_steps=seq,
            total_steps=TOTAL_STEPS,
        ),
    )


class YtmakerPublisher(Publisher):
    """A script stage reporting progress, for many tasks at once (one stage worker each)."""

    def __init__(self) -> None:
        self.settings = ServiceSettings()  # KAFKA_BOOTSTRAP_SERVERS, YTMAKER_TOPIC_PREFIX
        self.producer = EventProducer(self.settings, "script")
        self.requested: dict[str, TaskRequested] = {}

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()

    async def prepare(self, owner: str, tasks: list[str]) -> None:
        fresh = [t for t in tasks if t not in self.requested]
        for task_id in fresh:
            self.requested[task_id] = requested(task_id, owner)
        await asyncio.gather(*(self.producer.send(Topic.TASKS, self.requested[t]) for t in fresh))
        await asyncio.gather(*(self.producer.send(Topic.SCRIPT, self._started(t)) for t in fresh))

    def _started(self, task_id: str) -> StageStarted:
        return started(self.requested[task_id], self.settings.instance)

    def event(self, task_id: str, seq: int) -> StageProgressed:
        return progressed(self.requested[task_id], seq, self.settings.instance)

    async def publish(self, task_id: str, seq: int) -> None:
        await self.producer.send(Topic.SCRIPT, self.event(task_id, seq))

    async def burst(self, task_id: str, seqs: range) -> None:
        """Every event handed to the producer at once (it batches them, in order)."""
        topic = self.settings.topics.name(Topic.SCRIPT)
        key = task_id.encode()
        futures = []
        for seq in seqs:
            value = self.event(task_id, seq).model_dump_json().encode()
            futures.append(await self.producer.kafka.send(topic, value=value, key=key))
        await asyncio.gather(*futures)


class RedisPublisher(Publisher):
    def __init__(self) -> None:
        self.design = RedisDesignPublisher(
            os.environ["BENCH_REDIS_URL"], os.environ.get("BENCH_REDIS_DATABASE_URL")
        )

    async def stop(self) -> None:
        await self.design.close()

    async def prepare(self, owner: str, tasks: list[str]) -> None:
        self.design.create_projects(tasks)

    async def publish(self, task_id: str, seq: int) -> None:
        await self.design.update_progress(
            task_id, "script_generating", percent(seq, TOTAL_STEPS), MESSAGE, seq
        )


class SocketioPublisher(Publisher):
    """A Socket.IO client of the baseline server with the publisher token."""

    def __init__(self) -> None:
        self.url = os.environ["BENCH_SOCKETIO_URL"]
        self.token = os.environ["BENCH_SOCKETIO_PUBLISHER_TOKEN"]
        self.ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.ws = await connect(sio.engine_url(self.url), compression=None, ping_interval=None)
        await sio.handshake(self.ws, auth={"publisher_token": self.token})
        self._reader = asyncio.create_task(self._answer_pings(self.ws))

    async def _answer_pings(self, ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            async for frame in ws:
                if frame == sio.PING:
                    await ws.send(sio.PONG)

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self.ws is not None:
            await self.ws.close()

    async def publish(self, task_id: str, seq: int) -> None:
        assert self.ws is not None, "start() first"
        data: dict[str, Any] = {
            "task_id": task_id,
            "progress": percent(seq, TOTAL_STEPS),
            "status": "generating_content",
            "message": MESSAGE,
            "details": {"seq": seq, "produced_at": time.time()},
        }
        await self.ws.send(sio.event_frame("publish", data))


def make_publisher(target: str) -> Publisher:
    if target == "ytmaker":
        return YtmakerPublisher()
    if target in ("redis", "redis-nodb"):
        return RedisPublisher()
    if target == "socketio":
        return SocketioPublisher()
    raise ValueError(f"unknown target {target!r}")


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
