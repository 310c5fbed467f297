"""Fixtures of the progress service's integration tests: real Kafka, real databases."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.support.kafka import unique_name
from tests.support.topics import read_topic as read_topic  # the suite's helpers, re-exported
from ytmaker_progress.settings import ProgressSettings
from ytmaker_shared.events import Event
from ytmaker_shared.kafka import EventProducer, delete_topics, ensure_topics
from ytmaker_shared.topics import Topic


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The read model's database: SQLite (WAL) in a file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'progress.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def settings(kafka_bootstrap: str, tmp_path: Path) -> AsyncIterator[ProgressSettings]:
    """Settings on unique topics, with the topics created (and deleted after the test)."""
    async for s in topics_for(kafka_bootstrap, tmp_path / "default.db"):
        yield s


async def topics_for(
    kafka_bootstrap: str, database: Path, prefix: str = "progress", **overrides: Any
) -> AsyncIterator[ProgressSettings]:
    """`settings`' body, for a test's own fixture that needs other settings (`overrides`)."""
    s = ProgressSettings(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        topic_prefix=unique_name(prefix) + ".",
        progress_database_url=f"sqlite:///{database}",
        progress_http_port=0,
        health_port=0,
        producer_delivery_timeout_s=20,
        **overrides,
    )
    await ensure_topics(s)
    yield s
    await delete_topics(s)


@pytest.fixture
async def publisher(settings: ProgressSettings) -> AsyncIterator[EventProducer]:
    async with EventProducer(settings, "test") as producer:
        yield producer


async def publish(producer: EventProducer, events: Iterable[tuple[Topic, Event]]) -> int:
    """Send events in order, each acknowledged before the next (the pipeline's causal order)."""
    n = 0
    for topic, event in events:
        await producer.send(topic, event)
        n += 1
    return n


async def read_updates(
    settings: ProgressSettings, *, until: int | None = None, timeout: float = 60.0
) -> list[tuple[int, int, dict[str, Any]]]:
    """Every committed record of `progress.updates`: (partition, offset, update JSON).
    With `until`, waits (up to `timeout`) until at least that many are there."""
    records = await read_topic(settings, Topic.PROGRESS_UPDATES, until=until, timeout=timeout)
    return [(r.partition, r.offset, json.loads(r.value)) for r in records]


async def open_transactions(settings: ProgressSettings, topic: Topic) -> set[int]:
    """Partitions of `topic` whose last stable offset is behind their end: a transaction is
    open there, or its commit markers are not written yet (the broker writes them after it
    answers the commit)."""
    name = settings.topics.name(topic)
    tps = [TopicPartition(name, p) for p in range(settings.topic_partitions)]
    ends: dict[str, dict[TopicPartition, int]] = {}
    for isolation in ("read_committed", "read_uncommitted"):
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers, isolation_level=isolation
        )
        await consumer.start()
        try:
            ends[isolation] = await consumer.end_offsets(tps)
        finally:
            await consumer.stop()
    return {tp.partition for tp in tps if ends["read_committed"][tp] < ends["read_uncommitted"][tp]}


async def wait_settled(settings: ProgressSettings, topic: Topic, timeout: float = 30) -> None:
    """Wait until no transaction is open on `topic`: a read_committed reader started right
    after a commit may otherwise stop short of it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while open_ := await open_transactions(settings, topic):
        if loop.time() > deadline:
            raise AssertionError(f"transactions still open on {topic}: partitions {open_}")
        await asyncio.sleep(0.1)
