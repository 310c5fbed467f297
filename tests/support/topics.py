"""Reading what a topic holds, for assertions."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from ytmaker_shared.settings import ServiceSettings
from ytmaker_shared.topics import Topic


async def read_topic(
    settings: ServiceSettings, topic: Topic, *, until: int | None = None, timeout: float = 60.0
) -> list[Any]:
    """Every record of `topic` as its readers see it, partition by partition in offset order:
    committed records only, but every record of `progress.updates`, which readers read
    uncommitted (decision 0038). With `until`, waits (up to `timeout`) until at least that
    many are there."""
    name = settings.topics.name(topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        isolation_level=(
            "read_uncommitted" if topic is Topic.PROGRESS_UPDATES else "read_committed"
        ),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        out: list[Any] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            ends = await consumer.end_offsets(partitions)
            positions = {tp: await consumer.position(tp) for tp in partitions}
            at_end = all(positions[tp] >= ends[tp] for tp in partitions)
            if at_end and (until is None or len(out) >= until):
                return out
            if loop.time() > deadline:
                raise AssertionError(f"only {len(out)} records after {timeout}s (want {until})")
            for records in (await consumer.getmany(timeout_ms=200)).values():
                out += records
    finally:
        await consumer.stop()
