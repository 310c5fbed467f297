"""The fold with exactly-once effect (decision 0038, after 0020 and 0029).

The fold consumes every pipeline topic (and the ETA projector's estimates) in one consumer
group; the range assignor gives a member the same partition number of every topic, a lane
(`lanes.py`). One loop polls the consumer and hands each lane its records; each lane folds in
a task of its own, so a lane waiting for the broker never delays the others or the next poll.

A lane's updates go to `progress.updates` as soon as they are folded, each with the lane's input
positions after its event in a header, through the lane's transactional producer; readers read
them uncommitted, so an update reaches clients one produce after its event, not one commit
after. Every `progress_checkpoint_interval_ms` the lane ends its transaction with a checkpoint
on `progress.state` (the states it changed, its positions, the end of its updates) and commits.
The transaction is kept for fencing, not for visibility: a new owner's `InitProducerId` aborts
a zombie's open transaction and makes the broker refuse the zombie's writes, so the log holds
only what owners wrote; the new owner then adopts the updates written after the last
checkpoint (`restore.py`), whose clients have already seen them, and resumes right after the
last one's event. Every event's update is in the log once.

A rebalance is part of the fold's life, not an accident (decision 0083). The listener only
closes lanes (each checkpoints, or stops if already fenced) and notes the new assignment with
its partitions paused; the polling loop restores the new lanes, while aiokafka heartbeats (it
does not during the listener's `on_partitions_assigned`, so a restore there longer than the
session timeout cost the membership, again and again). A lane whose producer was fenced or
failed is recovered only by a current member of the group: a member that lost its place
leaves the lane to the rebalance instead of fencing the new owner back.

The fold runs with the partition counts its topics had when it started (`_check_partitions`):
when one changes it stops the process (`PartitionsGrew`, decision 0138) rather than open lanes
by another count, and the restarted fold checks the new counts are still all the same.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, TypeAlias

import aiokafka.producer.sender
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.structs import ConsumerRecord

from ytmaker_progress import SERVICE, metrics
from ytmaker_progress.lanes import BATCH_BYTES, Lane
from ytmaker_progress.release import record_time
from ytmaker_progress.restore import restore
from ytmaker_progress.runners.lane import FoldFatal, LaneWorker
from ytmaker_progress.settings import ProgressSettings
from ytmaker_shared.kafka import DeadLetterWriter, EventProducer
from ytmaker_shared.kafka.batches import transaction_error
from ytmaker_shared.kafka.connection import aiokafka_connection, close_client
from ytmaker_shared.kafka.fetchwait import CONSUMER_TIMEOUT_MS, AdaptiveFetchWait
from ytmaker_shared.kafka.group import (
    committed_offsets,
    partition_counts,
    refresh_metadata,
    still_member,
)
from ytmaker_shared.kafka.growth import PartitionWatch
from ytmaker_shared.kafka.polling import poll_or_stop
from ytmaker_shared.topics import PIPELINE_TOPICS, Topic

log = logging.getLogger(__name__)

Record: TypeAlias = ConsumerRecord[bytes, bytes]


class FoldService:
    """Consumes every pipeline topic and folds it into `progress.updates` and `progress.state`.

    `await run(stopping)` until `stopping` is set; `ready` is true once lanes are restored.
    Raises FoldFatal when misconfigured or a lane hits a bug (a fenced lane is not fatal).
    """

    def __init__(self, settings: ProgressSettings) -> None:
        self.settings = settings
        topics = settings.topics
        self.eta_topic = topics.name(Topic.PROGRESS_ETA)
        self.input_names = [*(topics.name(t) for t in PIPELINE_TOPICS), self.eta_topic]
        self.updates_topic = topics.name(Topic.PROGRESS_UPDATES)
        self.state_topic = topics.name(Topic.PROGRESS_STATE)
        self.group_id = settings.fold_group_id
        self.consumer = AIOKafkaConsumer(
            **aiokafka_connection(settings),
            group_id=self.group_id,
            client_id=f"{SERVICE}-fold-{settings.instance}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            partition_assignment_strategy=(RangePartitionAssignor,),
            consumer_timeout_ms=CONSUMER_TIMEOUT_MS,
            max_poll_interval_ms=int(settings.consumer_max_poll_interval_s * 1000),
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_wait_ms=settings.progress_fetch_max_wait_ms,
            fetch_min_bytes=settings.progress_fetch_min_bytes,
            session_timeout_ms=settings.progress_session_timeout_ms,
            heartbeat_interval_ms=max(100, settings.progress_session_timeout_ms // 3),
        )
        # Dead letters are not part of a lane's transaction: one that is written stays written
        # (after a crash a record may be dead-lettered twice, never lost).
        self.letters = EventProducer(settings, SERVICE)
        self.dead_letters = DeadLetterWriter(self.letters, self.group_id)
        self.fetch_wait = AdaptiveFetchWait(
            self.consumer,
            busy_ms=settings.progress_fetch_max_wait_ms,
            busy_min_bytes=settings.progress_fetch_min_bytes,
            idle_ms=500,  # a lane's recovery seeks: its fetch waits for the one in flight
        )
        self.lanes: dict[int, Lane] = {}
        #: Partitions of each topic (by name) at start, for the lanes' check that an event is
        #: read from its task's partition (decision 0123); made by `_check_partitions`.
        self.watch: PartitionWatch | None = None
        self.ready = False
        _wait_between_transactions(settings.progress_retry_backoff_ms / 1000)
        self._busy = asyncio.Lock()
        self._generation = 0  # changes whenever lanes open or close
        self._assigned: set[int] | None = None  # lanes assigned, to open (paused till then)
        self._fatal: BaseException | None = None

    async def run(self, stopping: asyncio.Event) -> None:
        await self.letters.start()
        await self.consumer.start()
        try:
            await self._check_partitions()
            self.consumer.subscribe(self.input_names, listener=_Rebalance(self))
            while not stopping.is_set():
                generation = self._generation
                batch = await self._poll(stopping)
                await self._watch().tick()
                self.fetch_wait.saw(sum(len(records) for records in batch.values()))
                if self._fatal is not None:
                    raise FoldFatal(str(self._fatal)) from self._fatal
                async with self._busy:  # no rebalance while positions move
                    if self._assigned is not None:
                        numbers, self._assigned = self._assigned, None
                        await self._open_lanes(numbers)  # heartbeats go on meanwhile
                        continue  # what this poll brought predates the restore
                    if generation != self._generation:
                        # Lanes changed while polling: the batch may predate the positions
                        # set by the assignment. Drop it and start again from the restore.
                        for lane in self.lanes.values():
                            await self._seek_positions(lane)
                        continue
                    failed = {n for n, lane in self.lanes.items() if lane.failed}
                    for number in failed:
                        await self._recover_lane(self.lanes[number])
                    # what this poll brought a failed lane predates its recovery's seek
                    self._hand_out(
                        {tp: rs for tp, rs in batch.items() if tp.partition not in failed}
                    )
                    self._count_tasks()
        finally:
            self.ready = False
            async with self._busy:
                await self._close_lanes()
            await close_client(self.consumer.stop(), self.group_id)
            await self.letters.stop()

    async def _poll(self, stopping: asyncio.Event) -> dict[TopicPartition, list[Record]]:
        return await poll_or_stop(
            self.consumer,
            stopping,
            timeout_ms=200,
            max_records=self.settings.progress_fold_batch_size,
        )

    async def _check_partitions(self) -> None:
        """Lanes need every input and output topic to have the same partition count."""
        names = [*self.input_names, self.updates_topic, self.state_topic]
        counts: dict[str, int] = {}
        for name in names:
            parts = await self._partitions(name)
            if not parts:
                raise FoldFatal(f"topic {name} does not exist: create the topics first")
            counts[name] = len(parts)
        if len(set(counts.values())) != 1:
            raise FoldFatal(f"topics must have the same number of partitions: {counts}")
        self.watch = PartitionWatch(
            "progress-fold", counts, lambda: partition_counts(self.consumer, names)
        )

    def _watch(self) -> PartitionWatch:
        assert self.watch is not None, "_check_partitions() first"
        return self.watch

    async def _partitions(self, name: str) -> set[int]:
        for _ in range(50):
            parts = self.consumer.partitions_for_topic(name)
            if parts:
                return set(parts)
            await refresh_metadata(self.consumer)
            await asyncio.sleep(0.1)
        return set()

    # --- folding ------------------------------------------------------------------------

    def _hand_out(self, batch: dict[TopicPartition, list[Record]]) -> None:
        """Give each lane its records and wake every lane holding some (held records are
        looked at again after every poll, see `release`)."""
        now = time.monotonic()
        for tp, records in batch.items():
            if (lane := self.lanes.get(tp.partition)) is not None:
                lane.held.setdefault(tp, []).extend(records)
                lane.delivered[tp] = now
                latest = max(record_time(record) for record in records)
                lane.watermarks[tp] = max(lane.watermarks.get(tp, latest), latest)
        for lane in self.lanes.values():
            if lane.held:
                lane.wake.set()

    def _count_tasks(self) -> None:
        lanes = self.lanes.values()
        metrics.TASKS_IN_MEMORY.labels("state").set(sum(len(lane.states) for lane in lanes))
        metrics.TASKS_IN_MEMORY.labels("marker").set(sum(len(lane.finished) for lane in lanes))

    # --- lanes --------------------------------------------------------------------------

    async def _open_lanes(self, numbers: set[int]) -> None:
        self.ready = False
        try:
            lanes = await asyncio.gather(*(self._new_lane(n) for n in sorted(numbers)))
            self.lanes = {lane.number: lane for lane in lanes}
            # a topic that grows brings a rebalance: these lanes would be of the old count
            await self._watch().confirm(time.monotonic())
            await restore(self.settings, self.lanes.values())
            for lane in self.lanes.values():
                await self._seek_positions(lane)
                self._start_worker(lane)
        except Exception as exc:  # the listener must not raise: the loop will
            log.exception("cannot open lanes")
            self._fatal = exc
            return
        self._generation += 1
        self.ready = True
        log.info(
            "lanes restored",
            extra={
                "lanes": sorted(numbers),
                "tasks": sum(len(lane.states) for lane in self.lanes.values()),
                "finished": sum(len(lane.finished) for lane in self.lanes.values()),
            },
        )

    async def _new_lane(self, number: int) -> Lane:
        first, second = (
            EventProducer(
                self.settings,
                SERVICE,
                transactional_id=transactional_id,
                transaction_timeout_ms=self.settings.progress_transaction_timeout_ms,
                max_batch_size=BATCH_BYTES,
                linger_ms=self.settings.progress_linger_ms,
                retry_backoff_ms=self.settings.progress_retry_backoff_ms,
            )
            for transactional_id in self.settings.transactional_ids(number)
        )
        try:  # InitProducerId: fences the zombies, ends their transactions
            await asyncio.gather(first.start(), second.start())
        except BaseException:
            await asyncio.gather(first.stop(), second.stop(), return_exceptions=True)
            raise
        return Lane(number, (first, second))

    def _start_worker(self, lane: Lane) -> None:
        worker = LaneWorker(
            lane,
            self.settings,
            self.consumer,
            self.dead_letters,
            self._fail,
            self._watch(),
        )
        lane.worker = asyncio.create_task(worker.run(), name=f"fold-lane-{lane.number}")

    def _fail(self, exc: BaseException) -> None:
        """A lane cannot go on: the polling loop stops the process (FoldFatal)."""
        self._fatal = exc

    async def _close_lanes(self) -> None:
        """Let every lane finish the piece in hand and checkpoint (a lane already fenced just
        stops), then close its producer."""
        lanes, self.lanes = list(self.lanes.values()), {}
        self._assigned = None
        self._generation += 1
        await asyncio.gather(*(_stop_worker(lane) for lane in lanes))
        await asyncio.gather(*(_stop_producers(lane) for lane in lanes))
        fenced = sorted(lane.number for lane in lanes if lane.fenced)
        if fenced:
            log.info("lanes closed after being fenced", extra={"lanes": fenced})

    async def _seek_positions(self, lane: Lane) -> None:
        """Position the lane's inputs where its restore says it stands, not where the consumer
        may have fetched before. An input the lane never folded starts at the group's committed
        offset (written by a fold before 0029) or its beginning. Every position is set
        explicitly, so records fetched before this point are never skipped."""
        tps = [tp for tp in self.consumer.assignment() if tp.partition == lane.number]
        lane.held.clear()  # fetched before the seek: read again from the positions
        lane.watermarks.clear()
        unknown = [tp for tp in tps if tp not in lane.positions]
        committed = await committed_offsets(self.consumer, unknown)
        missing = [tp for tp in unknown if tp not in committed or committed[tp].offset < 0]
        beginnings = await self.consumer.beginning_offsets(missing) if missing else {}
        for tp in tps:
            if tp in lane.positions:
                self.consumer.seek(tp, lane.positions[tp])
            elif tp in beginnings:
                self.consumer.seek(tp, beginnings[tp])
                lane.positions[tp] = beginnings[tp]
            else:
                self.consumer.seek(tp, committed[tp].offset)
                lane.positions[tp] = committed[tp].offset
        self.consumer.resume(*tps)

    async def _recover_lane(self, lane: Lane) -> None:
        """After a failed write or a fencing: a fresh producer (which aborts the open
        transaction), the lane's state from the log, a new worker; but only while this member
        still belongs to the group's generation. Otherwise the lane stays stopped (its
        partitions paused) until the rebalance that is coming revokes it: a fresh producer
        would fence the lane's new owner."""
        tps = [tp for tp in self.consumer.assignment() if tp.partition == lane.number]
        self.consumer.pause(*tps)
        if not await still_member(self.consumer):
            log.info("lane left to the rebalance", extra={"lane": lane.number})
            return
        await _stop_worker(lane)
        await _stop_producers(lane)
        fresh = await self._new_lane(lane.number)
        self.lanes[lane.number] = fresh
        await restore(self.settings, [fresh])
        await self._seek_positions(fresh)
        self._start_worker(fresh)
        log.info("lane recovered", extra={"lane": lane.number})


async def _stop_worker(lane: Lane) -> None:
    """Stop the lane's worker and let the checkpoint it handed over, if any, end."""
    lane.closing = True
    lane.wake.set()
    if lane.worker is not None:
        await asyncio.gather(lane.worker, return_exceptions=True)
    if lane.committing is not None:
        await asyncio.gather(lane.committing.task, return_exceptions=True)


async def _stop_producers(lane: Lane) -> None:
    for producer in lane.producers:
        transaction_error(producer.kafka)  # dealt with: the lane is recovered or closed
    await asyncio.gather(*(p.stop() for p in lane.producers), return_exceptions=True)


def _wait_between_transactions(seconds: float) -> None:
    """How long aiokafka waits before asking again to add a partition to a new transaction
    while the broker still writes the markers of the previous one (CONCURRENT_TRANSACTIONS).

    aiokafka fixes it at 20 ms in a module constant (KAFKA-5477); the first update after a
    checkpoint would wait that long (decision 0027). Only transactional producers meet this
    error, and in this process they are all the fold's lanes.
    """
    if not hasattr(aiokafka.producer.sender, "BACKOFF_OVERRIDE"):
        raise RuntimeError("aiokafka no longer has producer.sender.BACKOFF_OVERRIDE: see 0027")
    aiokafka.producer.sender.BACKOFF_OVERRIDE = seconds


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, service: FoldService) -> None:
        self.service = service

    async def on_partitions_revoked(self, revoked: Any) -> None:
        async with self.service._busy:  # the lane's round in hand finishes first
            self.service.ready = False
            await self.service._close_lanes()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        """Only note the lanes: aiokafka sends no heartbeat until this returns, and a restore
        grows with the history. The polling loop opens them."""
        async with self.service._busy:
            self.service.consumer.pause(*assigned)
            self.service._assigned = {tp.partition for tp in assigned}
            self.service._generation += 1
