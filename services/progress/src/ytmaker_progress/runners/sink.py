"""The read-model sink: `progress.updates` and `pipeline.tasks` into the database and the
in-memory recent history (docs/decisions/0022-progress-read-model.md).

No consumer group: every process reads every partition (each API replica then holds the recent
history of every task). Positions live in the database, written in the same transaction as the
rows, so a crash never stores a batch twice nor skips one; rows are idempotent on
(task_id, offset) anyway. Updates are read as soon as the fold writes them, uncommitted: every
update in the log is one (decision 0038).

It reads the partitions the topics had when it started, and checks updates against that count
(decision 0123); when a count changes it stops the process (`PartitionsGrew`, decision 0138),
before storing a batch it might misjudge, and the restarted sink reads the new partitions from
their beginning.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

from aiokafka import TopicPartition

from ytmaker_progress import SERVICE, metrics
from ytmaker_progress.readmodel.memory import RecentHistory
from ytmaker_progress.readmodel.rows import (
    Positions,
    Rows,
    StoredUpdate,
    add_request,
    add_update,
)
from ytmaker_progress.runners.eta import Latest
from ytmaker_progress.settings import ProgressSettings
from ytmaker_shared.events import DecodeError, TaskRequested, decode
from ytmaker_shared.kafka.fetchwait import AdaptiveFetchWait
from ytmaker_shared.kafka.group import partition_counts
from ytmaker_shared.kafka.growth import PartitionWatch
from ytmaker_shared.kafka.reader import Batch, LogReader
from ytmaker_shared.kafka.skipped import skip_record
from ytmaker_shared.kafka.topic_id import TopicIdUnavailable
from ytmaker_shared.topics import Topic

log = logging.getLogger(__name__)

#: How many finished stage attempts the sink remembers having written, so that the updates
#: that repeat them in later batches do not write them again (an upsert that changes nothing
#: cost a third of a batch's write for tasks past their first stage). Forgetting one only
#: writes it once more.
STAGE_RUNS_REMEMBERED = 100_000


class Destination(Protocol):
    """Where the sink writes: a `Store`, or a rebuild's `StoreProcess`."""

    def positions(self) -> Positions: ...

    def write(self, rows: Rows, positions: Positions) -> None: ...


class Sink:
    """`await run(stopping)` follows the topics until `stopping` is set. `ready` turns true
    once the database has caught up with the end of the topics as they were at start;
    `epoch` is the topic id of `progress.updates` (None until known)."""

    def __init__(
        self,
        settings: ProgressSettings,
        store: Destination,
        memory: RecentHistory | None = None,
        *,
        batch_size: int = 5000,
        on_batch: Callable[[Latest], None] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.memory = memory
        self.on_batch = on_batch  # the ETA projector's `saw`: each task's latest update
        self.batch_size = batch_size
        self.updates_topic = settings.topics.name(Topic.PROGRESS_UPDATES)
        self.tasks_topic = settings.topics.name(Topic.TASKS)
        self.watch: PartitionWatch | None = None  # made once assigned
        self.epoch: str | None = None
        self.ready = False
        self.caught_up = asyncio.Event()
        self.stored = 0
        self._writing: asyncio.Task[None] | None = None
        self._stage_runs_seen: OrderedDict[tuple[str, str, int], tuple[str, str]] = OrderedDict()
        self.reader = LogReader(
            settings,
            name="progress-sink",
            isolation="read_uncommitted",  # the fold's updates (0038)
            max_partition_fetch_bytes=8 * 1024 * 1024,
            # every fold commit would otherwise be a fetch and a database transaction
            fetch_max_wait_ms=settings.progress_sink_fetch_max_wait_ms,
            fetch_min_bytes=settings.progress_sink_fetch_min_bytes,
        )

    async def run(self, stopping: asyncio.Event) -> None:
        async with self.reader as reader:
            catch_up = await reader.ends(await self._assign())
            fetch_wait = AdaptiveFetchWait(
                reader.consumer,
                busy_ms=self.settings.progress_sink_fetch_max_wait_ms,
                busy_min_bytes=self.settings.progress_sink_fetch_min_bytes,
            )
            try:
                await self._check_caught_up(catch_up)  # nothing to catch up with
                async for batch in reader.batches(stopping, max_records=self.batch_size):
                    fetch_wait.saw(sum(len(records) for records in batch.values()))
                    if batch:
                        await self._store(batch)
                    await self._check_caught_up(catch_up)
                    await self._watch().tick()
                await self._written()
            finally:
                if self._writing is not None and not self._writing.done():
                    self._writing.cancel()

    async def _check_caught_up(self, catch_up: dict[TopicPartition, int]) -> None:
        if not self.ready and await self.reader.reached(catch_up):
            await self._written()
            self.ready = True
            self.caught_up.set()
            log.info("read model caught up", extra={"updates": self.stored})

    async def _written(self) -> None:
        """Wait for the batch being written (and raise what it raised)."""
        if self._writing is not None:
            writing, self._writing = self._writing, None
            await writing

    async def _assign(self) -> list[TopicPartition]:
        """Read both topics from the positions stored with the rows (from the start where
        there are none, or where `progress.updates` was recreated: another epoch)."""
        reader = self.reader
        try:
            self.epoch = await reader.topic_id(self.updates_topic)
        except TopicIdUnavailable as exc:
            log.warning("no topic id: updates carry no epoch", extra={"error": str(exc)})
        updates = await reader.partitions(self.updates_topic)
        tasks = await reader.partitions(self.tasks_topic)
        topics = [self.updates_topic, self.tasks_topic]
        self.watch = PartitionWatch(
            "progress-sink",
            {self.updates_topic: len(updates), self.tasks_topic: len(tasks)},
            lambda: partition_counts(reader.consumer, topics),
        )
        partitions = [*updates, *tasks]
        await reader.assign(partitions)
        stored = await asyncio.to_thread(self.store.positions)
        for tp in partitions:
            position = stored.get((tp.topic, tp.partition))
            recreated = tp.topic == self.updates_topic and position and position[1] != self.epoch
            if position is None or recreated:
                await reader.seek_to_beginning([tp])
            else:
                reader.seek({tp: position[0]})
        return partitions

    def _watch(self) -> PartitionWatch:
        assert self.watch is not None, "assigned first"
        return self.watch

    async def _store(self, batch: Batch) -> None:
        read_at = time.monotonic()
        rows, positions = Rows(finished_seen=self._stage_runs_seen), Positions()
        items: list[tuple[str, StoredUpdate]] = []
        updates_partitions = self._watch().started[self.updates_topic]
        for tp, records in batch.items():
            for record in records:
                if tp.topic == self.updates_topic:
                    # One outside its task's partition is refused (`wrong_partition`) like
                    # one that cannot be read: counted, logged, and the partition goes on
                    # (decision 0123); unless the count grew (decision 0138).
                    try:
                        items.append(
                            add_update(
                                rows,
                                record.offset,
                                self.epoch,
                                record.value,
                                partition=tp.partition,
                                partitions=updates_partitions,
                            )
                        )
                    except DecodeError as exc:
                        if exc.reason == "wrong_partition":
                            await self._watch().confirm(read_at)
                        skip_record(SERVICE, record, exc)
                else:
                    try:
                        event = decode(record.value)
                    except DecodeError as exc:
                        skip_record(SERVICE, record, exc)  # the fold dead-letters it
                        continue
                    if isinstance(event, TaskRequested):
                        add_request(rows, event)
            epoch = self.epoch if tp.topic == self.updates_topic else None
            positions[(tp.topic, tp.partition)] = (records[-1].offset + 1, epoch)
        if self.on_batch is not None and rows.latest:
            self.on_batch(rows.latest)
        _forget_oldest(self._stage_runs_seen, STAGE_RUNS_REMEMBERED)
        # One batch is written (in a thread) while the next is fetched and parsed; batches
        # are written one at a time, in order, each with its positions.
        await self._written()
        self._writing = asyncio.create_task(self._write(rows, positions, items))

    async def _write(
        self, rows: Rows, positions: Positions, items: list[tuple[str, StoredUpdate]]
    ) -> None:
        started = time.perf_counter()
        await asyncio.to_thread(self.store.write, rows, positions)
        log.debug("stored", extra={"rows": len(rows.history), "s": time.perf_counter() - started})
        if self.memory is not None:
            for task_id, item in items:
                self.memory.add(task_id, item)
        self.stored += len(items)
        metrics.SINK_UPDATES.inc(len(items))


def _forget_oldest(seen: OrderedDict[Any, Any], keep: int) -> None:
    """Drop the entries added first until `keep` remain. An OrderedDict: a dict whose first
    entries are deleted again and again is walked past their empty slots at every look."""
    while len(seen) > keep:
        seen.popitem(last=False)
