"""`PartitionWriter` against the real broker: records of any size, in order, and every batch it
sends ends with a record that carries its ending headers, the only one of the batch that does
(the fold's input positions ride there, decision 0109). The batches are watched as the
producer sends them; what is checked is what a reader of the partition gets."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from tests.support.topics import read_topic
from ytmaker_progress.settings import ProgressSettings
from ytmaker_shared.kafka import EventProducer
from ytmaker_shared.kafka.batches import PartitionWriter
from ytmaker_shared.topics import Topic

pytestmark = pytest.mark.kafka

BATCH_BYTES = 8 * 1024


@pytest.fixture
async def producer(settings: ProgressSettings) -> AsyncIterator[AIOKafkaProducer]:
    async with EventProducer(settings, "test", max_batch_size=BATCH_BYTES) as events:
        yield events.kafka


def watch_batches(kafka: AIOKafkaProducer) -> list[int]:
    """The record count of every batch `kafka` sends from now on, in order."""
    counts: list[int] = []
    send_batch = kafka.send_batch

    async def counted(batch: Any, topic: str, *, partition: int) -> Any:
        counts.append(batch.record_count())
        return await send_batch(batch, topic, partition=partition)

    kafka.send_batch = counted  # type: ignore[method-assign]
    return counts


def ending(i: int) -> Any:
    return lambda: [("end", str(i).encode())]


async def test_every_batch_ends_with_its_last_records_ending_headers(
    settings: ProgressSettings, producer: AIOKafkaProducer
) -> None:
    rng = random.Random(109)
    sizes = [rng.choice([0, 1, 200, 900, 3_000, 7_500]) for _ in range(300)]
    sizes[150] = 3 * BATCH_BYTES  # larger than a batch: one of its own
    values = [rng.randbytes(n) for n in sizes]
    topic = settings.topics.name(Topic.PROGRESS_UPDATES)
    counts = watch_batches(producer)
    writer = PartitionWriter(producer, topic, 0, batch_bytes=BATCH_BYTES)
    for i, value in enumerate(values):
        own = [("own", b"x" * (i % 3))] if i % 2 else []
        await writer.write(f"k{i}".encode(), value, own, ending(i) if i % 7 else None)
        if i == 200:
            await writer.flush()  # a flush ends a batch too
    end = await writer.acked_end()

    records = [r for r in await read_topic(settings, Topic.PROGRESS_UPDATES) if r.partition == 0]
    assert end == len(values) == writer.written
    assert [r.value for r in records] == values
    assert sum(counts) == len(values) and len(counts) > 10
    lasts = {sum(counts[: n + 1]) - 1 for n in range(len(counts))}
    assert {150, 200} <= lasts and 149 in lasts  # the large one alone, the flush's batch ended
    for i, record in enumerate(records):
        headers = dict(record.headers)
        assert headers.get("own") == (b"x" * (i % 3) if i % 2 else None)
        wanted = str(i).encode() if i in lasts and i % 7 else None
        assert headers.get("end") == wanted, (i, i in lasts)


async def test_abandon_forgets_the_record_held_back_and_the_open_batch(
    settings: ProgressSettings, producer: AIOKafkaProducer
) -> None:
    topic = settings.topics.name(Topic.PROGRESS_UPDATES)
    writer = PartitionWriter(producer, topic, 1, batch_bytes=BATCH_BYTES)
    await writer.write(b"gone", b"a", (), ending(0))
    await writer.write(b"gone", b"b", (), ending(1))  # "a" in the open batch, "b" held back
    writer.abandon()
    assert await writer.acked_end() is None  # nothing left to send
    await writer.write(b"kept", b"c", (), ending(2))
    assert await writer.acked_end() == 1

    records = [r for r in await read_topic(settings, Topic.PROGRESS_UPDATES) if r.partition == 1]
    assert [(r.value, dict(r.headers).get("end")) for r in records] == [(b"c", b"2")]
