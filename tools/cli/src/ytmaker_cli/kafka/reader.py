"""Read topics as an auditor does, on the shared group-less reader
(`ytmaker_shared.kafka.reader.LogReader`): no consumer group (nothing committed, nobody's
offsets moved), committed transactions only unless asked otherwise (`progress.updates` is read
uncommitted, as its own readers do), each partition from a start offset to the end offset it
had when the read began.

`read` yields records partition by partition as they come; `merged` yields them in time order
across every partition of every topic asked (a k-way merge on the record timestamp, with a
bounded buffer per partition). Every failure of the cluster is a `KafkaUnavailable` whose text
says what could not be done: the command line prints it as its one-line error.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from ytmaker_shared.kafka.reader import Batch, LogReader, Record, TopicMissing
from ytmaker_shared.settings import ServiceSettings

#: Records held per partition before the merge stops fetching it.
_BUFFER = 2000
#: How long the command line waits for a broker that does not answer at start (seconds).
BROKER_WAIT_S = 3.0

T = TypeVar("T")


class KafkaUnavailable(RuntimeError):
    """The cluster did not answer (or a topic does not exist): `str(exc)` says which."""


@dataclass(frozen=True)
class Raw:
    """One record as it is in the log."""

    topic: str
    partition: int
    offset: int
    timestamp: int  # ms
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


#: Per partition: the first offset to read and the offset to stop before.
Ranges = dict[TopicPartition, tuple[int, int]]


def time_order(r: Raw) -> tuple[int, str, int, int]:
    """The order `merged` releases records in: timestamp, then topic, partition, offset."""
    return (r.timestamp, r.topic, r.partition, r.offset)


async def in_time(*streams: AsyncIterator[Raw]) -> AsyncIterator[Raw]:
    """The records of streams each in `time_order` (`merged` of different readers), merged
    in that order."""
    heads: list[tuple[tuple[int, str, int, int], int, Raw]] = []
    for n, stream in enumerate(streams):
        if (first := await anext(stream, None)) is not None:
            heapq.heappush(heads, (time_order(first), n, first))
    while heads:
        _, n, raw = heapq.heappop(heads)
        yield raw
        if (following := await anext(streams[n], None)) is not None:
            heapq.heappush(heads, (time_order(following), n, following))


class RangeReader:
    """`async with RangeReader(bootstrap) as log: ...`. `committed=False` reads aborted and
    open transactions too: how `progress.updates` must be read (decision 0038: every update
    there is real, whether its transaction committed or not). Raises KafkaUnavailable."""

    def __init__(
        self,
        bootstrap: str,
        *,
        committed: bool = True,
        timeout_ms: int = 15_000,
        stall_s: float = 30.0,
    ) -> None:
        self.bootstrap = bootstrap
        self.stall_s = stall_s
        self._last_progress = 0.0
        settings = ServiceSettings(
            kafka_bootstrap_servers=bootstrap, broker_startup_wait_s=BROKER_WAIT_S
        )
        self._log = LogReader(
            settings,
            name="ytmaker-cli",
            isolation="read_committed" if committed else "read_uncommitted",
            request_timeout_ms=timeout_ms,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )

    async def __aenter__(self) -> RangeReader:
        try:
            await self._log.__aenter__()
        except (KafkaError, OSError) as exc:
            await self._log.__aexit__()
            raise KafkaUnavailable(f"cannot reach Kafka at {self.bootstrap}: {exc}") from None
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._log.__aexit__()

    async def _ask(self, what: str, call: Awaitable[T]) -> T:
        try:
            return await call
        except KafkaError as exc:
            raise KafkaUnavailable(f"cannot {what}: {exc}") from None

    async def topics(self) -> set[str]:
        return set(await self._ask("list topics", self._log.consumer.topics()))

    async def partitions(self, topic: str) -> list[TopicPartition]:
        """Every partition of `topic`; raises KafkaUnavailable for a topic that is missing."""
        if topic not in await self.topics():
            raise KafkaUnavailable(f"topic {topic} does not exist")
        try:
            return await self._ask(f"describe {topic}", self._log.partitions(topic, timeout_s=5))
        except TopicMissing:
            raise KafkaUnavailable(f"topic {topic} does not exist") from None

    async def bounds(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, tuple[int, int]]:
        """Per partition: its first offset still held and its end (for `read_committed`:
        the last stable offset)."""
        tps = list(tps)
        if not tps:
            return {}
        begin = await self._ask("read offsets", self._log.beginnings(tps))
        end = await self._ask("read offsets", self._log.ends(tps))
        return {tp: (begin[tp], end[tp]) for tp in tps}

    async def offsets_at(
        self, tps: Iterable[TopicPartition], timestamp_ms: int
    ) -> dict[TopicPartition, int | None]:
        """Per partition: the first offset whose timestamp is at or after `timestamp_ms`
        (None: none is)."""
        tps = list(tps)
        found = await self._ask("look up offsets by time", self._log.offsets_at(tps, timestamp_ms))
        return {tp: found.get(tp) for tp in tps}

    async def _start(self, ranges: Mapping[TopicPartition, tuple[int, int]]) -> Ranges:
        """Assign and seek the non-empty ranges; returns them."""
        wanted = {tp: r for tp, r in ranges.items() if r[0] < r[1]}
        if wanted:
            await self._log.assign(wanted)
            self._log.seek({tp: start for tp, (start, _) in wanted.items()})
        self._last_progress = time.monotonic()
        return wanted

    async def _finished(self, wanted: Ranges, reading: set[TopicPartition]) -> None:
        """Drop from `reading` the partitions whose range is read."""
        for tp in list(reading):
            if await self._ask("read positions", self._log.position(tp)) >= wanted[tp][1]:
                reading.discard(tp)

    async def read(self, ranges: Mapping[TopicPartition, tuple[int, int]]) -> AsyncIterator[Raw]:
        """Every record in `ranges`, each partition in offset order (partitions
        interleaved)."""
        wanted = await self._start(ranges)
        reading = set(wanted)
        while reading:
            batch = await self._get(reading)
            for tp, records in batch.items():
                end = wanted[tp][1]
                for r in records:
                    if r.offset >= end:
                        break
                    yield _raw(r)
            await self._finished(wanted, reading)
        await self._log.assign([])

    async def merged(
        self,
        ranges: Mapping[TopicPartition, tuple[int, int]],
        key: Callable[[Raw], tuple[int, str, int, int]] | None = None,
    ) -> AsyncIterator[Raw]:
        """Every record in `ranges`, in time order across partitions: by timestamp, then
        topic, partition and offset. Partitions are merged as they are (each in offset
        order); a record is released once every unfinished partition has one to compare."""
        order = key or time_order
        wanted = await self._start(ranges)
        buffers: dict[TopicPartition, deque[Raw]] = {tp: deque() for tp in wanted}
        fetching = set(wanted)
        while True:
            while any(not buffers[tp] for tp in fetching):
                await self._fetch(wanted, buffers, fetching)
            heads = [tp for tp in wanted if buffers[tp]]
            if not heads:
                break
            first = min(heads, key=lambda tp: order(buffers[tp][0]))
            yield buffers[first].popleft()
        await self._log.assign([])

    async def _fetch(
        self,
        wanted: Ranges,
        buffers: dict[TopicPartition, deque[Raw]],
        fetching: set[TopicPartition],
    ) -> None:
        """One fetch into the buffers of the partitions still being read whose buffer has
        room; finished ones leave `fetching`."""
        active = [tp for tp in fetching if len(buffers[tp]) < _BUFFER]
        if not active:
            return
        batch = await self._get(active)
        for tp, records in batch.items():
            end = wanted[tp][1]
            buffers[tp].extend(_raw(r) for r in records if r.offset < end)
        await self._finished(wanted, fetching)

    async def _get(self, partitions: Iterable[TopicPartition]) -> Batch:
        """One fetch of these partitions; KafkaUnavailable when nothing came for `stall_s`."""
        batch = await self._ask("read", self._log.poll(timeout_ms=500, partitions=list(partitions)))
        now = time.monotonic()
        if any(batch.values()):
            self._last_progress = now
        elif now - self._last_progress > self.stall_s:
            raise KafkaUnavailable(f"nothing could be read for {self.stall_s:g}s")
        return batch


def _raw(record: Record) -> Raw:
    return Raw(
        record.topic,
        record.partition,
        record.offset,
        record.timestamp,
        record.key,
        record.value,
        tuple((k, bytes(v)) for k, v in (record.headers or ())),
    )
