"""Read topics as an auditor does: no consumer group (nothing committed, nobody's offsets
moved), committed transactions only unless asked otherwise (`progress.updates` is read
uncommitted, as its own readers do), each partition from a start offset to the end offset it
had when the read began.

`read` yields records partition by partition as they come; `merged` yields them in time
order across every partition of every topic asked (a k-way merge on the record timestamp,
with a bounded buffer per partition).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

#: Records held per partition before the merge pauses fetching it.
_BUFFER = 2000


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


class LogReader:
    """`async with LogReader(bootstrap) as log: ...`. `committed=False` reads aborted and
    open transactions too: how `progress.updates` must be read (decision 0038: every update
    there is real, whether its transaction committed or not)."""

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
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed" if committed else "read_uncommitted",
            auto_offset_reset="earliest",
            request_timeout_ms=timeout_ms,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        self._admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms
        )

    async def __aenter__(self) -> LogReader:
        try:
            await self._consumer.start()
            await self._admin.start()
        except KafkaError as exc:
            await self.__aexit__()
            raise KafkaUnavailable(f"cannot reach Kafka at {self.bootstrap}: {exc}") from None
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._consumer.stop()
        await self._admin.close()

    async def topics(self) -> set[str]:
        try:
            return set(await self._admin.list_topics())
        except KafkaError as exc:
            raise KafkaUnavailable(f"cannot list topics: {exc}") from None

    async def partitions(self, topic: str) -> list[TopicPartition]:
        """Every partition of `topic`; raises KafkaUnavailable for a topic that is missing."""
        try:
            described = await self._admin.describe_topics([topic])
        except KafkaError as exc:
            raise KafkaUnavailable(f"cannot describe {topic}: {exc}") from None
        found = [p["partition"] for d in described if d["error_code"] == 0 for p in d["partitions"]]
        if not found:
            raise KafkaUnavailable(f"topic {topic} does not exist")
        return [TopicPartition(topic, p) for p in sorted(found)]

    async def bounds(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, tuple[int, int]]:
        """Per partition: its first offset still held and its end (for `read_committed`:
        the last stable offset)."""
        tps = list(tps)
        if not tps:
            return {}
        try:
            begin = await self._consumer.beginning_offsets(tps)
            end = await self._consumer.end_offsets(tps)
        except KafkaError as exc:
            raise KafkaUnavailable(f"cannot read offsets: {exc}") from None
        return {tp: (begin[tp], end[tp]) for tp in tps}

    async def offsets_at(
        self, tps: Iterable[TopicPartition], timestamp_ms: int
    ) -> dict[TopicPartition, int | None]:
        """Per partition: the first offset whose timestamp is at or after `timestamp_ms`
        (None: none is)."""
        tps = list(tps)
        try:
            found = await self._consumer.offsets_for_times(dict.fromkeys(tps, timestamp_ms))
        except KafkaError as exc:
            raise KafkaUnavailable(f"cannot look up offsets by time: {exc}") from None
        return {tp: (found[tp].offset if found.get(tp) is not None else None) for tp in tps}

    async def read(self, ranges: Mapping[TopicPartition, tuple[int, int]]) -> AsyncIterator[Raw]:
        """Every record in `ranges`, each partition in offset order (partitions
        interleaved)."""
        wanted = {tp: r for tp, r in ranges.items() if r[0] < r[1]}
        if not wanted:
            return
        self._consumer.assign(list(wanted))
        for tp, (start, _) in wanted.items():
            self._consumer.seek(tp, start)
        open_ = set(wanted)
        self._last_progress = time.monotonic()
        while open_:
            batch = await self._get(open_)
            for tp, records in batch.items():
                end = wanted[tp][1]
                for r in records:
                    if r.offset >= end:
                        break
                    yield _raw(r)
            for tp in list(open_):
                if await self._consumer.position(tp) >= wanted[tp][1]:
                    open_.discard(tp)
                    self._consumer.pause(tp)
        self._consumer.assign([])

    async def merged(
        self,
        ranges: Mapping[TopicPartition, tuple[int, int]],
        key: Callable[[Raw], tuple[int, str, int, int]] | None = None,
    ) -> AsyncIterator[Raw]:
        """Every record in `ranges`, in time order across partitions: by timestamp, then
        topic, partition and offset. Partitions are merged as they are (each in offset
        order); a record is released once every unfinished partition has one to compare."""
        order = key or (lambda r: (r.timestamp, r.topic, r.partition, r.offset))
        wanted = {tp: r for tp, r in ranges.items() if r[0] < r[1]}
        if not wanted:
            return
        self._consumer.assign(list(wanted))
        for tp, (start, _) in wanted.items():
            self._consumer.seek(tp, start)
        buffers: dict[TopicPartition, deque[Raw]] = {tp: deque() for tp in wanted}
        fetching = set(wanted)
        self._last_progress = time.monotonic()
        while True:
            while any(not buffers[tp] for tp in fetching):
                await self._fetch(wanted, buffers, fetching)
            heads = [tp for tp in wanted if buffers[tp]]
            if not heads:
                break
            first = min(heads, key=lambda tp: order(buffers[tp][0]))
            yield buffers[first].popleft()
        self._consumer.assign([])

    async def _fetch(
        self,
        wanted: Mapping[TopicPartition, tuple[int, int]],
        buffers: dict[TopicPartition, deque[Raw]],
        fetching: set[TopicPartition],
    ) -> None:
        """One fetch into the buffers of the partitions still being read; partitions with a
        full buffer are paused meanwhile, finished ones leave `fetching`."""
        active = [tp for tp in fetching if len(buffers[tp]) < _BUFFER]
        if not active:
            return
        batch = await self._get(active)
        for tp, records in batch.items():
            end = wanted[tp][1]
            buffers[tp].extend(_raw(r) for r in records if r.offset < end)
        for tp in list(fetching):
            if await self._consumer.position(tp) >= wanted[tp][1]:
                fetching.discard(tp)
                self._consumer.pause(tp)

    async def _get(
        self, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        """One fetch; KafkaUnavailable when nothing came for `stall_s` seconds."""
        try:
            batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
            batch = await self._consumer.getmany(*partitions, timeout_ms=500)
        except KafkaError as exc:
            raise KafkaUnavailable(f"cannot read: {exc}") from None
        now = time.monotonic()
        if any(batch.values()):
            self._last_progress = now
        elif now - self._last_progress > self.stall_s:
            raise KafkaUnavailable(f"nothing could be read for {self.stall_s:g}s")
        return batch


def _raw(record: ConsumerRecord[bytes, bytes]) -> Raw:
    return Raw(
        record.topic,
        record.partition,
        record.offset,
        record.timestamp,
        record.key,
        record.value,
        tuple((k, bytes(v)) for k, v in (record.headers or ())),
    )
