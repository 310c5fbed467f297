"""The whole ytmaker system as processes on a broker of its own, for the chaos test
(docs/architecture.md, "The guarantees").

- :class:`ChaosSystem`: the broker (a `LocalKafka` the test may SIGKILL and start again on the
  same ports and data directory), topics, and every service as its own process
  (`python -m ytmaker_<name>`) on fixed ports, so that a restarted process is found where the
  old one was. Logs go to `<root>/logs/<name>-<n>.log`, one file per start.
- :class:`PipelineReader`: every event of the `pipeline.*` topics, read straight from Kafka
  (the kill points are chosen from it, independent of the services under test).
- :class:`Watcher`: a real WebSocket client of the gateway, authenticated by JWT, that resumes
  every task by its own last offset whenever its connection drops (docs/protocol.md).
- :func:`read_updates`: the task's updates as `progress.updates` holds them, in offset order.

Nothing here sleeps for a fixed time to wait for an outcome: waits poll with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from tests.integration.pipeline.harness import Service
from tests.support.internal import internal_headers
from ytmaker_dev.kafka import LocalKafka
from ytmaker_dev.layout import PROCESSES, process
from ytmaker_dev.ports import free_port
from ytmaker_gateway.auth import TokenConfig, mint_token
from ytmaker_shared.events import Event, decode
from ytmaker_shared.kafka import ensure_topics
from ytmaker_shared.progress import ProgressUpdate
from ytmaker_shared.settings import ServiceSettings
from ytmaker_shared.topics import PIPELINE_TOPICS, Topic

#: The processes of the system as `make run` starts them, in its start order.
SERVICES = tuple(p.name for p in PROCESSES)
STAGE_SERVICES = ("script", "assets", "render", "upload")
UPDATE_TYPES = {"progress", "status", "error"}
SECRET = "chaos-secret-0123456789abcdef0123456789abcdef"
READY_TIMEOUT = 90.0


async def poll(
    condition: Callable[[], object],
    *,
    timeout: float,
    what: str,
    alive: Callable[[], None] | None = None,
    interval: float = 0.1,
) -> None:
    """Poll `condition()` until truthy; AssertionError after `timeout` s. `alive()` may raise
    to end the wait early (a service died)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if alive is not None:
            alive()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(interval)


@dataclass
class ChaosSystem:
    """One system under test. Call :meth:`start` (after the broker runs), then :meth:`stop`."""

    broker: LocalKafka
    root: Path
    prefix: str
    services: dict[str, Service] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    crashes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in SERVICES:
            self.ports[name] = free_port()
        self.ports["progress-api"] = free_port()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.ports['gateway']}"

    @property
    def settings(self) -> ServiceSettings:
        return ServiceSettings(
            kafka_bootstrap_servers=self.broker.bootstrap_servers,
            topic_prefix=self.prefix,
            topic_partitions=3,
        )

    def env(self, name: str) -> dict[str, str]:
        """The process environment of service `name`: offline (no API key), own ports."""
        keep = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("YTMAKER_") and not k.endswith("_API_KEY")
        }
        return {
            **keep,
            "PYTHONUNBUFFERED": "1",
            "KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap_servers,
            "YTMAKER_TOPIC_PREFIX": self.prefix,
            "YTMAKER_TOPIC_PARTITIONS": "3",
            "YTMAKER_ARTIFACT_DIR": str(self.root / "artifacts"),
            "YTMAKER_PUBLISH_DIR": str(self.root / "published"),
            "YTMAKER_STAGE_PROGRESS_INTERVAL_S": "0.2",
            "YTMAKER_STAGE_CREATE_TOPICS": "false",
            "YTMAKER_PROGRESS_DATABASE_URL": f"sqlite:///{self.root / 'progress.db'}",
            "YTMAKER_PROGRESS_HTTP_PORT": str(self.ports["progress-api"]),
            "YTMAKER_PROGRESS_URL": f"http://127.0.0.1:{self.ports['progress-api']}",
            "YTMAKER_PORT": str(self.ports["gateway"]),
            "YTMAKER_PUBLIC_URL": self.base,
            "YTMAKER_JWT_SECRET": SECRET,
            "YTMAKER_INTERNAL_TOKEN": os.environ["YTMAKER_INTERNAL_TOKEN"],
            "YTMAKER_HEALTH_PORT": str(self.ports[name]) if name != "gateway" else "0",
            "YTMAKER_LOG_LEVEL": "INFO",
        }

    def ready_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}/readyz"

    async def start(self) -> None:
        """Create the topics, start every service, wait until each is ready."""
        await ensure_topics(self.settings)
        for name in SERVICES:
            self.services[name] = Service(
                name, self.env(name), self.root / "logs", command=process(name).command()
            )
            self.services[name].start()
        for name in SERVICES:
            await self.wait_ready(name)

    def stop(self) -> None:
        for name in reversed(SERVICES):
            if name in self.services:
                self.services[name].stop()

    def kill(self, name: str) -> None:
        """SIGKILL service `name` (no goodbye, no commit) and wait until it is gone."""
        self.services[name].kill()

    async def restart(self, name: str, *, wait: bool = True) -> None:
        """Start `name` again (same ports and environment); with `wait`, until it is ready."""
        self.services[name].stop()  # closes the log of the killed process
        self.services[name].start()
        if wait:
            await self.wait_ready(name)

    def kill_broker(self) -> None:
        self.broker.kill()

    async def restart_broker(self) -> None:
        """Start the broker again on the same data directory and ports."""
        await asyncio.to_thread(self.broker.start, 120.0)

    async def wait_ready(self, name: str, timeout: float = READY_TIMEOUT) -> None:
        url = self.ready_url(name)

        async def ready() -> bool:
            try:
                async with httpx.AsyncClient(timeout=2, headers=internal_headers()) as client:
                    return (await client.get(url)).status_code == 200
            except httpx.HTTPError:
                return False

        deadline = time.monotonic() + timeout
        while not await ready():
            self.check_alive()
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} not ready after {timeout:.0f}s\n{self.logs()}")
            await asyncio.sleep(0.2)

    def revive(self) -> None:
        """What an orchestrator does (Kubernetes' `restartPolicy: Always`): start again every
        service that exited on its own. Each such crash is recorded in `crashes`."""
        for name, service in self.services.items():
            process = service.process
            if process is not None and process.poll() is not None:
                tail = service.log_text()[-1500:]
                self.crashes.append(f"{name} exited with {process.returncode}:\n{tail}")
                service.stop()
                service.start()

    def check_alive(self) -> None:
        """Raise when a service exited on its own (not one the test killed)."""
        dead = {
            name: s.process.returncode
            for name, s in self.services.items()
            if s.process is not None and s.process.poll() is not None and s.process.returncode > 0
        }
        if dead:
            raise AssertionError(f"services exited: {dead}\n{self.logs()}")

    def token(self, user: str = "alice") -> str:
        return str(mint_token(TokenConfig(secret=SECRET), user))

    async def create_project(self, title: str, content: str, **settings: Any) -> dict[str, Any]:
        """POST /api/v1/projects as alice; returns `{project_id, task_id, ws_url, ...}`."""
        body = {"title": title, "content": content, "settings": settings}
        headers = {"Authorization": f"Bearer {self.token()}"}
        async with httpx.AsyncClient(base_url=self.base, timeout=20) as client:
            response = await client.post("/api/v1/projects", json=body, headers=headers)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def state(self, task_id: str) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.token()}"}
        async with httpx.AsyncClient(base_url=self.base, timeout=20) as client:
            response = await client.get(f"/api/v1/progress/{task_id}", headers=headers)
        assert response.status_code == 200, response.text
        state: dict[str, Any] = response.json()
        return state

    def logs(self, tail: int = 4000) -> str:
        parts = [f"===== {n} =====\n{s.log_text()[-tail:]}" for n, s in self.services.items()]
        return "\n".join(parts)


async def read_updates(settings: ServiceSettings, task_ids: Iterable[str]) -> dict[str, list[Any]]:
    """Every update of `task_ids` in `progress.updates`, read from the log's start to its end:
    `{task_id: [(offset, event_id), ...]}` in offset order."""
    wanted = {t: [] for t in task_ids}  # type: dict[str, list[Any]]
    topic = settings.topics.name(Topic.PROGRESS_UPDATES)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        # The log as clients see it: every update the fold wrote, committed or not (0038).
        isolation_level="read_uncommitted",
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        ends = await consumer.end_offsets(tps)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    update = ProgressUpdate.model_validate_json(record.value or b"")
                    if update.task_id in wanted:
                        wanted[update.task_id].append((record.offset, update.event_id))
    finally:
        await consumer.stop()
    return {t: sorted(found) for t, found in wanted.items()}


@dataclass
class PipelineReader:
    """Collects every event of the pipeline topics while :meth:`run` runs; survives a broker
    restart (a failed consumer is replaced and continues after what it already read)."""

    settings: ServiceSettings
    events: list[Event] = field(default_factory=list)
    _next: dict[TopicPartition, int] = field(default_factory=dict)

    def count(self, predicate: Callable[[Event], bool] = lambda e: True) -> int:
        return sum(1 for e in self.events if predicate(e))

    async def run(self, stopping: asyncio.Event) -> None:
        topics = [self.settings.topics.name(t) for t in PIPELINE_TOPICS]
        while not stopping.is_set():
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.settings.kafka_bootstrap_servers,
                group_id=None,
                enable_auto_commit=False,
                request_timeout_ms=5000,
            )
            try:
                await consumer.start()
                parts = range(self.settings.topic_partitions)  # as ChaosSystem created them
                tps = [TopicPartition(t, p) for t in topics for p in parts]
                consumer.assign(tps)
                for tp in tps:
                    if tp in self._next:
                        consumer.seek(tp, self._next[tp])
                    else:
                        await consumer.seek_to_beginning(tp)
                while not stopping.is_set():
                    batch = await consumer.getmany(timeout_ms=200)
                    for tp, records in batch.items():
                        for record in records:
                            self._next[tp] = record.offset + 1
                            with contextlib.suppress(Exception):  # the DLQ's concern, not ours
                                self.events.append(decode(record.value or b""))
            except asyncio.CancelledError:
                raise
            except Exception:  # the broker went away: start a new consumer where we were
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()


@dataclass
class Watcher:
    """A WebSocket client watching tasks through the gateway (docs/protocol.md, "WebSocket").

    On every (re)connection it subscribes to each task with the last offset it received (`-1`
    before any), so the stream after each answering `subscribed` must continue exactly there.
    Half of its reconnections also pass `old_client_id`: the server's restored subscriptions
    (`restored: true`) are then ignored until the answer to its own subscribe, as docs/protocol.md
    advises. Offsets that do not grow are recorded in `problems`, as is a
    `subscribed` with `recovered: false`. A subscribe refused with `unavailable` or
    `forbidden` (see `_handle`) is asked again after 0.5 s and counted in `refused`. With
    `drop_rate`, it also drops its own connection at random moments (half with a close
    handshake, half without).
    """

    ws_url: str
    token: str
    rng: random.Random
    drop_rate: float = 0.0
    seen: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)
    progress: dict[str, list[float]] = field(default_factory=dict)  # overall, per update
    problems: list[str] = field(default_factory=list)
    connections: int = 0
    drops: int = 0
    received_at: list[float] = field(default_factory=list)  # time.monotonic() of each update
    _client_id: str | None = None
    refused: dict[str, int] = field(default_factory=dict)  # subscribes refused, by code
    _outstanding: str | None = None  # the subscribe awaiting its answer

    def watch(self, task_id: str) -> None:
        """Start watching `task_id` (subscribed at once when connected)."""
        self.seen.setdefault(task_id, [])

    def updates(self) -> int:
        return sum(len(v) for v in self.seen.values())

    def last(self, task_id: str) -> int:
        seen = self.seen[task_id]
        return seen[-1][0] if seen else -1

    def finished(self, task_ids: Iterable[str]) -> bool:
        ends = {"completed", "failed", "cancelled"}
        return all(self.status.get(t) in ends for t in task_ids)

    async def run(self, stopping: asyncio.Event) -> None:
        """Watch until `stopping` is set, reconnecting (every 0.2 s) whenever the gateway is
        unreachable or the connection drops."""
        while not stopping.is_set():
            url = f"{self.ws_url}/api/v1/ws?token={self.token}"
            if self._client_id is not None and self.rng.random() < 0.5:
                url += f"&old_client_id={self._client_id}"
            try:
                async with connect(url, open_timeout=5) as ws:
                    self.connections += 1
                    await self._session(ws, stopping)
            except (OSError, TimeoutError, WebSocketException):
                pass
            if not stopping.is_set():
                await asyncio.sleep(0.2)

    async def _session(self, ws: ClientConnection, stopping: asyncio.Event) -> None:
        """One connection. Subscribes one task at a time, so that a refused subscribe is
        always the outstanding one."""
        hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert hello["type"] in ("connected", "reconnected"), hello
        self._client_id = hello["payload"]["client_id"]
        asked: set[str] = set()  # tasks subscribed (or being subscribed) on this connection
        answered: set[str] = set()  # ... whose `subscribed` answer came
        retry_at: dict[str, float] = {}
        self._outstanding = None
        last_ping = time.monotonic()
        while not stopping.is_set():
            now = time.monotonic()
            if self._outstanding is not None and self._outstanding not in asked:
                retry_at[self._outstanding] = now + 0.5  # refused: ask again a bit later
                self._outstanding = None
            waiting = [t for t in self.seen if t not in asked and retry_at.get(t, 0) <= now]
            if self._outstanding is None and waiting:
                task_id = waiting[0]
                since = self.last(task_id)
                message = {"action": "subscribe", "task_id": task_id, "since": since}
                await ws.send(json.dumps(message))
                asked.add(task_id)
                self._outstanding = task_id
            if now - last_ping > 5:  # any message counts as life
                await ws.send(json.dumps({"type": "ping"}))
                last_ping = now
            try:
                raw = await asyncio.wait_for(ws.recv(), 0.2)
            except TimeoutError:
                continue
            self._handle(json.loads(raw), asked, answered)
            if self.drop_rate and self.rng.random() < self.drop_rate:
                self.drops += 1
                if self.rng.random() < 0.5:
                    await ws.close()
                else:
                    ws.transport.abort()  # as if the network went away
                return

    def _handle(self, message: dict[str, Any], asked: set[str], answered: set[str]) -> None:
        kind, task_id = message.get("type"), message.get("task_id")
        if kind == "subscribed" and message["payload"].get("restored"):
            answered.discard(task_id)  # the server's resume, not the answer to ours
        elif kind == "subscribed" and task_id in self.seen:
            if not message["payload"].get("recovered", False):
                self.problems.append(f"{task_id}: not recovered from {self.last(task_id)}")
            answered.add(task_id)
            if task_id == self._outstanding:
                self._outstanding = None
        elif kind == "error" and message["payload"].get("details", {}).get("restored"):
            # The server could not resume a stream of the old session (the read model was
            # down or behind); like restored streams, it does not count: ours decides.
            code = message["payload"].get("code")
            self.refused[code] = self.refused.get(code, 0) + 1
        elif kind == "error" and message.get("offset") is None:  # a protocol error
            code = message["payload"].get("code")
            if code in ("unavailable", "forbidden") and self._outstanding:
                # unavailable: the progress service is down. forbidden: our own task, but the
                # gateway (restarted: it forgot the tasks it created) and the read model (not
                # caught up) do not know it yet. Both pass: ask again.
                self.refused[code] = self.refused.get(code, 0) + 1
                asked.discard(self._outstanding)
            else:
                self.problems.append(f"error: {message}")
        elif kind in UPDATE_TYPES and task_id in answered:
            offset, payload = message["offset"], message["payload"]
            if offset <= self.last(task_id):
                self.problems.append(f"{task_id}: {offset} after {self.last(task_id)}")
            self.seen[task_id].append((offset, payload["event_id"]))
            self.received_at.append(time.monotonic())
            self.progress.setdefault(task_id, []).append(payload["progress"])
            self.status[task_id] = payload["status"]
