"""Reading a task's past updates from `progress.updates` by offset, one page at a time
(docs/protocol.md "Paged replay"; docs/decisions/0040-paged-replay.md).

A small pool of the shared group-less readers (`LogReader`). A replay borrows one for one page: the
task's partition is assigned, the reader seeks to where the page starts (unless the consumer
already stands there, which keeps what it prefetched), and records are read until the page
holds `limit` of the task's updates or the page's end is reached. Between pages the consumer
goes back to the pool, so a client that reads slowly holds no reader while it is waited for,
and the updates of a replay are never all in memory at once. `bounds()` tells which offsets
the partition still holds, so that the caller can say `recovered: false` when the asked-for
ones are gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiokafka import TopicPartition

from ytmaker_gateway.fanout.delivery import (
    BAD_RECORDS,
    Delivery,
    delivery_from_record,
    key_mismatch,
)
from ytmaker_gateway.settings import GatewaySettings
from ytmaker_shared.events import DecodeError
from ytmaker_shared.kafka.reader import LogReader
from ytmaker_shared.topics import Topic


@dataclass(frozen=True)
class Page:
    """Some of a task's updates, in order, and where the next page starts."""

    items: list[Delivery]
    position: int


@dataclass(eq=False)
class _Reader:
    log: LogReader
    #: The partition assigned and the offset the reader will fetch next (None: unknown).
    tp: TopicPartition | None = None
    position: int | None = None
    busy: bool = field(default=False)


class ReplayReader:
    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.topic = settings.topics.name(Topic.PROGRESS_UPDATES)
        self._readers: list[_Reader] = []
        self._freed = asyncio.Condition()
        self._offsets_reader: LogReader | None = None
        self._offsets_lock = asyncio.Lock()

    def _log_reader(self, name: str) -> LogReader:
        # Every update the fold writes is one, committed or not (decision 0038).
        return LogReader(
            self.settings,
            name=f"gateway-replay-{name}",
            isolation="read_uncommitted",
            fetch_max_wait_ms=50,
        )

    async def _started(self, name: str) -> LogReader:
        """A reader, connected; raises at once when the broker cannot be reached (a replay
        then fails with `replay_failed` rather than wait for the broker)."""
        reader = self._log_reader(name)
        await reader.start(patient=False)
        return reader

    @asynccontextmanager
    async def _borrow(self, tp: TopicPartition, position: int) -> AsyncIterator[_Reader]:
        """A free reader, preferably one that stands at `position` of `tp` already."""
        async with self._freed:
            while True:
                free = [r for r in self._readers if not r.busy]
                ready = [r for r in free if r.tp == tp and r.position == position]
                if ready or free:
                    reader = (ready or free)[0]
                    break
                if len(self._readers) < self.settings.replay_readers:
                    reader = _Reader(self._log_reader(str(len(self._readers) + 1)), busy=True)
                    self._readers.append(reader)
                    try:
                        await reader.log.start(patient=False)
                    except BaseException:
                        self._readers.remove(reader)
                        raise
                    break
                await self._freed.wait()
            reader.busy = True
        try:
            yield reader
        except BaseException:
            reader.tp = reader.position = None  # interrupted mid-fetch: seek next time
            raise
        finally:
            async with self._freed:
                reader.busy = False
                # Every waiter looks again: with notify() a waiter woken and then cancelled
                # (its client left) took the wake-up with it, and the others slept on with a
                # free reader (found by the churn test).
                self._freed.notify_all()

    async def warm_up(self) -> None:
        """Connect the offset consumer and one page reader now, so that the first resume
        after a start (every client of a restarted gateway) does not wait for them."""
        await self._offsets()
        async with self._freed:
            if not self._readers:
                self._readers.append(_Reader(await self._started("1")))

    async def _offsets(self) -> LogReader:
        """The reader that answers offset queries: one, shared, not borrowed (its requests
        run side by side), so that a storm of subscribes does not queue behind page reads."""
        async with self._offsets_lock:
            if self._offsets_reader is None:
                self._offsets_reader = await self._started("offsets")
        return self._offsets_reader

    async def bounds(self, partition: int) -> tuple[int, int]:
        """(first offset still held, offset after the last) of one partition."""
        tp = TopicPartition(self.topic, partition)
        reader = await self._offsets()
        first, end = await asyncio.gather(reader.beginnings([tp]), reader.ends([tp]))
        return first[tp], end[tp]

    async def offset_at(self, partition: int, timestamp_ms: int) -> int | None:
        """The first offset written at or after `timestamp_ms`, or None if none is."""
        tp = TopicPartition(self.topic, partition)
        reader = await self._offsets()
        return (await reader.offsets_at([tp], timestamp_ms))[tp]

    async def page(
        self, task_id: str, partition: int, first: int, end: int, epoch: str | None, limit: int
    ) -> Page:
        """The task's updates from `first` on, in order: at least `limit` of them (fewer
        only when `end` is reached; whole fetches are kept, so at most `limit` plus one
        fetch, `max_partition_fetch_bytes`), and the offset the next page starts at (`end`
        when done). Records that cannot be decoded, and records keyed by the task whose
        update is another task's (`key_mismatch`: a hostile writer), are counted and
        skipped. Raises TimeoutError."""
        if first >= end:
            return Page([], end)
        tp = TopicPartition(self.topic, partition)
        key = task_id.encode()
        items: list[Delivery] = []
        position = first
        async with (
            self._borrow(tp, first) as reader,
            asyncio.timeout(self.settings.replay_timeout_s),
        ):
            log = reader.log
            if reader.tp != tp:
                await log.assign([tp])
                reader.tp, reader.position = tp, None  # another partition's offset says nothing
            if reader.position != first:
                log.seek({tp: first})
            reader.position = None
            while position < end and len(items) < limit:
                # Everything fetched so far, at once: the consumer asks for the next fetch
                # only when nothing is left, so it is on its way while this batch is decoded.
                batch = await log.poll(timeout_ms=500, partitions=[tp])
                for record in batch.get(tp, ()):
                    if record.offset >= end:
                        break
                    if record.key == key:
                        try:
                            delivery = delivery_from_record(
                                partition, record.offset, record.value, epoch, live=False
                            )
                            if delivery.task_id != task_id:
                                raise key_mismatch(task_id, delivery.task_id)
                        except DecodeError as exc:
                            BAD_RECORDS.skip(self.topic, partition, record.offset, exc, "replay")
                        else:
                            items.append(delivery)
                position = await log.position(tp)
            reader.position = position
        return Page(items, min(position, end))

    async def close(self) -> None:
        for reader in self._readers:
            await reader.log.stop()
        if self._offsets_reader is not None:
            await self._offsets_reader.stop()
