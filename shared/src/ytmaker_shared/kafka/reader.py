"""The one group-less Kafka reader: every projection and fan-out reads through it.

A `LogReader` owns one aiokafka consumer without a consumer group: it waits for a broker that is
down at start, assigns whole topics once they exist, seeks, polls until told to stop, and hands
its caller each record decoded by the caller's decoder, skipping (counting and logging once)
those that cannot be (`skip_record`). It never commits: where it stands is its caller's state
(the read model keeps it in its database, the gateway in its clients' offsets).

Readers of `progress.updates` read uncommitted (decision 0038); everything else committed.
aiokafka's private parts that readers need (a forced metadata refresh, the topic id) stay in
this package.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal, TypeAlias, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from ytmaker_shared.events import DecodeError
from ytmaker_shared.kafka.admin import start_when_reachable
from ytmaker_shared.kafka.connection import aiokafka_connection, close_client
from ytmaker_shared.kafka.fetchwait import CONSUMER_TIMEOUT_MS
from ytmaker_shared.kafka.group import refresh_metadata
from ytmaker_shared.kafka.polling import poll_or_stop
from ytmaker_shared.kafka.skipped import skip_record
from ytmaker_shared.kafka.topic_id import fetch_topic_id
from ytmaker_shared.settings import ServiceSettings

Record: TypeAlias = ConsumerRecord[bytes, bytes]
Batch: TypeAlias = dict[TopicPartition, list[Record]]
T = TypeVar("T")


class TopicMissing(RuntimeError):
    """A topic that did not come into existence in time."""


class LogReader:
    """`async with LogReader(settings, name="...") as reader:` then `assign`, then iterate
    `batches(stopping)`. `options` go to the consumer (fetch sizes and waits)."""

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        name: str,
        isolation: Literal["read_committed", "read_uncommitted"] = "read_committed",
        **options: Any,
    ) -> None:
        self.settings = settings
        self.name = name
        self.consumer = AIOKafkaConsumer(
            **aiokafka_connection(settings),
            group_id=None,
            enable_auto_commit=False,
            client_id=f"{name}-{settings.instance}",
            isolation_level=isolation,
            auto_offset_reset="earliest",
            consumer_timeout_ms=CONSUMER_TIMEOUT_MS,
            **options,
        )

    async def __aenter__(self) -> LogReader:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self, *, patient: bool = True) -> None:
        """Connect (what `async with` does, for a reader that outlives a block): retried while
        the broker cannot be reached, for up to `broker_startup_wait_s`; `patient=False`
        raises at once instead (a reader started on demand, whose caller has a deadline)."""
        if patient:
            await start_when_reachable(self.consumer, self.settings)
        else:
            await self.consumer.start()

    async def stop(self) -> None:
        # aiokafka#647: a consumer stopped before the task its start() made has run once
        # raises CancelledError from stop() (a reader opened and closed with nothing asked
        # between); one turn of the loop lets that task start.
        await asyncio.sleep(0)
        # no group to leave, nothing to send: only the goodbye is waited for (decision 0142)
        await close_client(self.consumer.stop(), self.name, within_s=1.0)

    # --- where it reads -----------------------------------------------------------------

    async def partitions(self, topic: str, *, timeout_s: float = 60.0) -> list[TopicPartition]:
        """Every partition of `topic`, waiting (up to `timeout_s`) until it exists; raises
        TopicMissing."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            parts = self.consumer.partitions_for_topic(topic)
            if parts:
                return [TopicPartition(topic, p) for p in sorted(parts)]
            if loop.time() > deadline:
                raise TopicMissing(f"topic {topic} does not exist after {timeout_s:.0f}s")
            await refresh_metadata(self.consumer)
            await asyncio.sleep(0.1)

    async def assign(self, partitions: Iterable[TopicPartition]) -> list[TopicPartition]:
        """Read these partitions (replacing any assignment); seek before reading."""
        tps = list(partitions)
        self.consumer.assign(tps)
        return tps

    async def seek_to_beginning(self, partitions: Iterable[TopicPartition]) -> None:
        tps = list(partitions)
        if tps:
            await self.consumer.seek_to_beginning(*tps)

    def seek(self, positions: Mapping[TopicPartition, int]) -> None:
        for tp, offset in positions.items():
            self.consumer.seek(tp, offset)

    async def beginnings(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        found: dict[TopicPartition, int] = await self.consumer.beginning_offsets(list(partitions))
        return found

    async def ends(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The end of each partition as this reader sees it (last stable offset when reading
        committed, high watermark when not)."""
        found: dict[TopicPartition, int] = await self.consumer.end_offsets(list(partitions))
        return found

    async def offsets_at(
        self, partitions: Iterable[TopicPartition], timestamp_ms: int
    ) -> dict[TopicPartition, int | None]:
        """The first offset written at or after `timestamp_ms` per partition (None: none)."""
        found = await self.consumer.offsets_for_times(dict.fromkeys(partitions, timestamp_ms))
        return {tp: (None if at is None else at.offset) for tp, at in found.items()}

    async def position(self, partition: TopicPartition) -> int:
        position: int = await self.consumer.position(partition)
        return position

    async def reached(self, ends: Mapping[TopicPartition, int]) -> bool:
        """Whether the reader stands at or past each of `ends`."""
        for tp, end in ends.items():
            if await self.position(tp) < end:
                return False
        return True

    async def topic_id(self, topic: str) -> str:
        """The topic's id (its epoch); raises TopicIdUnavailable."""
        return await fetch_topic_id(self.consumer._client, topic)

    # --- reading ------------------------------------------------------------------------

    async def poll(
        self,
        stopping: asyncio.Event | None = None,
        *,
        timeout_ms: int = 200,
        max_records: int | None = None,
        partitions: Sequence[TopicPartition] = (),
    ) -> Batch:
        """One fetch's records, per partition in offset order (empty after `timeout_ms`, or
        when `stopping` is set meanwhile)."""
        return await poll_or_stop(
            self.consumer,
            stopping,
            timeout_ms=timeout_ms,
            max_records=max_records,
            partitions=partitions,
        )

    async def batches(
        self, stopping: asyncio.Event, *, timeout_ms: int = 1000, max_records: int | None = None
    ) -> AsyncIterator[Batch]:
        """Poll until `stopping` is set (which ends a poll at once); an empty batch every
        `timeout_ms` without records, so that the caller can look at its clock."""
        while not stopping.is_set():
            yield await self.poll(stopping, timeout_ms=timeout_ms, max_records=max_records)

    async def to_the_end(
        self, partitions: Sequence[TopicPartition], *, max_records: int = 10_000
    ) -> AsyncIterator[Record]:
        """Every record from where the reader stands in `partitions` to their ends as they are
        when this begins."""
        ends = await self.ends(partitions)
        while not await self.reached(ends):
            batch = await self.poll(timeout_ms=500, max_records=max_records)
            for records in batch.values():
                for record in records:
                    yield record


def decoded(
    service: str, records: Iterable[Record], decode: Callable[[bytes | None], T]
) -> Iterator[tuple[Record, T]]:
    """Each record with what `decode` makes of its value; a record that `decode` refuses
    (DecodeError) is counted and logged once (`skip_record`) and left out."""
    for record in records:
        try:
            yield record, decode(record.value)
        except DecodeError as exc:
            skip_record(service, record, exc)
