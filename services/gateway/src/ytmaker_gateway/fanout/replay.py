"""Reading a task's past updates from `progress.updates` by offset (DESIGN §4).

A small pool of Kafka consumers without a group; each replay borrows one, assigns the task's
partition, seeks to the first wanted offset and reads up to (not including) the end it was
given, keeping the records keyed by the task. `bounds()` tells which offsets the partition
still holds, so that the caller can say `recovered: false` when the asked-for ones are gone.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaConsumer, TopicPartition

from ytmaker_gateway import metrics
from ytmaker_gateway.fanout.delivery import BadUpdate, Delivery, delivery_from_record
from ytmaker_gateway.settings import GatewaySettings
from ytmaker_shared.topics import Topic


class ReplayReader:
    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.topic = settings.topics.name(Topic.PROGRESS_UPDATES)
        self._free: asyncio.Queue[AIOKafkaConsumer] = asyncio.Queue()
        self._created = 0
        self._all: list[AIOKafkaConsumer] = []
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def _borrow(self) -> AsyncIterator[AIOKafkaConsumer]:
        async with self._lock:
            if self._free.empty() and self._created < self.settings.replay_readers:
                self._created += 1
                consumer = AIOKafkaConsumer(
                    bootstrap_servers=self.settings.kafka_bootstrap_servers,
                    group_id=None,
                    enable_auto_commit=False,
                    client_id=f"gateway-replay-{self.settings.instance}-{self._created}",
                    fetch_max_wait_ms=50,
                    # Every update the fold writes is one, committed or not (decision 0038).
                    isolation_level="read_uncommitted",
                )
                try:
                    await consumer.start()
                except BaseException:
                    self._created -= 1
                    raise
                self._all.append(consumer)
                self._free.put_nowait(consumer)
        consumer = await self._free.get()
        try:
            yield consumer
        finally:
            self._free.put_nowait(consumer)

    async def bounds(self, partition: int) -> tuple[int, int]:
        """(first offset still held, offset after the last) of one partition."""
        tp = TopicPartition(self.topic, partition)
        async with self._borrow() as consumer:
            first = (await consumer.beginning_offsets([tp]))[tp]
            end = (await consumer.end_offsets([tp]))[tp]
        return first, end

    async def offset_at(self, partition: int, timestamp_ms: int) -> int | None:
        """The first offset written at or after `timestamp_ms`, or None if none is."""
        tp = TopicPartition(self.topic, partition)
        async with self._borrow() as consumer:
            found = (await consumer.offsets_for_times({tp: timestamp_ms}))[tp]
        return None if found is None else found.offset

    async def read(
        self, task_id: str, partition: int, first: int, end: int, epoch: str | None
    ) -> list[Delivery]:
        """The task's updates with `first <= offset < end`, in order; raises TimeoutError."""
        if first >= end:
            return []
        tp = TopicPartition(self.topic, partition)
        key = task_id.encode()
        out: list[Delivery] = []
        async with self._borrow() as consumer, asyncio.timeout(self.settings.replay_timeout_s):
            consumer.assign([tp])
            consumer.seek(tp, first)
            position = first
            while position < end:
                batch = await consumer.getmany(tp, timeout_ms=500, max_records=2000)
                for record in batch.get(tp, ()):
                    if record.offset >= end:
                        break
                    if record.key == key:
                        try:
                            out.append(
                                delivery_from_record(partition, record.offset, record.value, epoch)
                            )
                        except BadUpdate:
                            metrics.BAD_UPDATES.inc()
                position = await consumer.position(tp)
        return out

    async def close(self) -> None:
        for consumer in self._all:
            await consumer.stop()


def uuid7_millis(task_id: str) -> int | None:
    """The creation time (ms) of a UUIDv7 task id, or None for any other id."""
    try:
        value = uuid.UUID(task_id)
    except ValueError:
        return None
    if value.version != 7:
        return None
    return value.int >> 80
