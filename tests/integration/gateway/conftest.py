"""Gateways on the real broker: real fan-out consumer and replay readers on a test-prefixed
`progress.updates`; the read model is the in-memory fake of the progress API (the progress
service has its own tests), the updates are written here as the progress service would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from tests.support.gateway import (
    FakeProgress,
    RecordingProducer,
    RunningServer,
    build_gateway,
    start_server,
)
from tests.support.kafka import unique_name
from ytmaker_gateway.app import create_app
from ytmaker_gateway.auth import mint_token
from ytmaker_gateway.gateway import Gateway
from ytmaker_gateway.settings import GatewaySettings
from ytmaker_shared.kafka import delete_topics, ensure_topics
from ytmaker_shared.kafka.reader import LogReader
from ytmaker_shared.progress import ProgressUpdate
from ytmaker_shared.topics import Topic

SECRET = "integration-secret-0123456789abcdef0123456789"


@dataclass
class Replica:
    gateway: Gateway
    server: RunningServer
    hub_task: asyncio.Task[None]
    stopping: asyncio.Event

    @property
    def ws(self) -> str:
        return self.server.ws

    async def stop(self) -> None:
        self.stopping.set()
        await self.server.stop()
        await self.hub_task
        await self.gateway.streams.reader.close()
        await self.gateway.progress.close()


@dataclass
class Cluster:
    """The shared pieces of one test: settings, the fake read model, the update writer."""

    settings: GatewaySettings
    fake: FakeProgress
    kafka: AIOKafkaProducer
    replicas: list[Replica] = field(default_factory=list)

    def token(self, user: str = "alice") -> str:
        return mint_token(self.settings.token_config(), user)

    async def write(self, update: ProgressUpdate, *, fold: bool = True) -> int:
        """Append an update to progress.updates (keyed by task); with `fold`, also to the
        fake read model, as the progress service would."""
        meta = await self.kafka.send_and_wait(
            self.settings.topics.name(Topic.PROGRESS_UPDATES),
            key=update.task_id.encode(),
            value=update.model_dump_json().encode(),
        )
        if fold:
            self.fake.record(meta.offset, update)
        return int(meta.offset)

    async def log_of(self, task_id: str) -> list[int]:
        """Every offset of the task's updates, read straight from Kafka."""
        return await task_offsets(self.settings, task_id)

    async def replica(self, **overrides: Any) -> Replica:
        settings = self.settings.model_copy(update=overrides)
        gateway = build_gateway(settings, self.fake.app(), RecordingProducer())
        await gateway.hub.start()
        stopping = asyncio.Event()
        hub_task = asyncio.create_task(gateway.hub.run(stopping))
        server = await start_server(
            create_app(gateway), settings.max_frame_bytes, compression=settings.ws_compression
        )
        replica = Replica(gateway, server, hub_task, stopping)
        self.replicas.append(replica)
        return replica


async def task_offsets(settings: GatewaySettings, task_id: str) -> list[int]:
    """Every offset of the task's updates in progress.updates, read straight from Kafka."""
    topic = settings.topics.name(Topic.PROGRESS_UPDATES)
    key = task_id.encode()
    reader = LogReader(settings, name="test-task-offsets", isolation="read_uncommitted")
    async with reader:
        tps = await reader.assign(await reader.partitions(topic))
        await reader.seek_to_beginning(tps)
        return sorted([r.offset async for r in reader.to_the_end(tps) if r.key == key])


ClusterFactory = Callable[..., Awaitable[Cluster]]


@pytest.fixture
async def cluster(kafka_bootstrap: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    settings = GatewaySettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        topic_prefix=unique_name("gw") + ".",
        topic_partitions=3,
        jwt_secret=SECRET,
        unknown_task_wait_s=0.5,
        artifact_dir=tmp_path / "artifacts",
        instance="it",
    )
    await ensure_topics(settings)
    kafka = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True, linger_ms=0
    )
    await kafka.start()
    result = Cluster(settings, FakeProgress(), kafka)
    try:
        yield result
    finally:
        for replica in result.replicas:
            await replica.stop()
        await kafka.stop()
        await delete_topics(settings)
