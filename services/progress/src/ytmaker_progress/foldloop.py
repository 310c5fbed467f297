"""The fold with exactly-once effect (DESIGN §4; docs/decisions/0020-progress-exactly-once.md).

Every pipeline topic is keyed by task_id and has the same number of partitions, so partition
*p* of every topic holds the same tasks: a **lane**. The range assignor gives one member the
same partition numbers on every topic, so a lane lives on one member. Each lane has its own
transactional producer (`transactional_id = <group>-lane-<p>`); one transaction per lane and
poll holds the lane's updates (to `progress.updates` partition *p*), the latest states of its
touched tasks and the lane's input positions (`progress.state` partition *p*, see
`positions.py`), and any dead letters.

When a lane is assigned, its producer is initialised first (this fences a zombie holding the
same transactional id and ends its open transaction), then its states and positions are read
from `progress.state` to the end (read_committed): both from the same committed transactions.
The consumer group's committed offsets only follow, for monitoring (`_report_positions`).

One loop polls the consumer and hands each lane its records; each lane folds and commits in its
own task, so a lane waiting for the broker to finish its transaction never delays the others
or the next poll (docs/decisions/0027-progress-fold-latency.md). Only the polling loop moves
consumer positions (assignment, recovery), never while a poll is in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import aiokafka.producer.sender
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError, ProducerFenced
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.structs import ConsumerRecord

from ytmaker_progress import SERVICE, metrics
from ytmaker_progress.fold import Folded, Input, apply
from ytmaker_progress.positions import (
    decode_positions,
    encode_positions,
    is_positions,
    positions_key,
)
from ytmaker_progress.records import (
    decode_estimate,
    decode_state,
    encode_state,
    encode_update,
)
from ytmaker_progress.settings import ProgressSettings
from ytmaker_shared.events import DecodeError
from ytmaker_shared.events import decode as decode_event
from ytmaker_shared.kafka import DeadLetterWriter, EventProducer
from ytmaker_shared.kafka.skipped import skip_record
from ytmaker_shared.topics import PIPELINE_TOPICS, Topic

log = logging.getLogger(__name__)

Record: TypeAlias = ConsumerRecord[bytes, bytes]


class FoldFatal(RuntimeError):
    """The fold cannot go on in this process (fenced by a newer instance, topics that do not
    match); the process must exit and be restarted."""


@dataclass
class Lane:
    """Partition `number` of every pipeline topic, its producer and its tasks' states.

    Memory stays bounded (docs/decisions/0025-progress-memory.md): a task that has finished
    keeps its full state for a grace period (`ended`: since when, by the monotonic clock),
    then only a marker (`finished`: task id → since when) that makes later events of it be
    ignored, as the fold would ignore them; markers go after the input topics' retention.
    """

    number: int
    producer: EventProducer
    dead_letters: DeadLetterWriter
    states: dict[str, Folded] = field(default_factory=dict)
    ended: dict[str, float] = field(default_factory=dict)
    finished: dict[str, float] = field(default_factory=dict)
    # Records fetched but not folded yet (FoldService._release).
    held: dict[TopicPartition, list[Record]] = field(default_factory=dict)
    # Per input partition: the latest record timestamp delivered (timestamps of one partition
    # need not grow: producers' clocks differ) and when it last delivered (monotonic clock).
    watermarks: dict[TopicPartition, int] = field(default_factory=dict)
    delivered: dict[TopicPartition, float] = field(default_factory=dict)
    opened: float = field(default_factory=time.monotonic)
    released: float = field(default_factory=time.monotonic)  # when held records last went
    began: float = 0.0  # when the lane's latest transaction began (monotonic clock)
    # Where the lane's committed transactions stand in each input: the next offset to fold.
    positions: dict[TopicPartition, int] = field(default_factory=dict)
    reported_at: float = 0.0  # when `positions` last went to the consumer group
    # The lane's folding task (FoldService._work) and how the polling loop talks to it.
    worker: asyncio.Task[None] | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    closing: bool = False
    failed: bool = False  # a transaction failed: the polling loop recovers the lane

    def keep(self, task_id: str, folded: Folded, now: float) -> None:
        """Hold the task's new state; a task that just finished starts its grace period."""
        self.states[task_id] = folded
        if folded.task.status.terminal and task_id not in self.ended:
            self.ended[task_id] = now

    def evict(self, now: float, grace_s: float, marker_s: float) -> int:
        """Replace finished tasks older than `grace_s` by markers, forget markers older than
        `marker_s`; returns how many states were evicted. Both dicts are in time order."""
        evicted = 0
        for task_id, since in list(self.ended.items()):
            if now - since < grace_s:
                break
            del self.ended[task_id]
            self.states.pop(task_id, None)
            self.finished[task_id] = now
            evicted += 1
        for task_id, since in list(self.finished.items()):
            if now - since < marker_s:
                break
            del self.finished[task_id]
        return evicted


class FoldService:
    """Consumes every pipeline topic and folds it into `progress.updates` and `progress.state`.

    `await run(stopping)` until `stopping` is set; `ready` is true once lanes are restored.
    Raises FoldFatal when fenced or misconfigured.
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
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=self.group_id,
            client_id=f"{SERVICE}-fold-{settings.instance}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            partition_assignment_strategy=(RangePartitionAssignor,),
            max_poll_interval_ms=int(settings.consumer_max_poll_interval_s * 1000),
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_wait_ms=settings.progress_fetch_max_wait_ms,
            session_timeout_ms=settings.progress_session_timeout_ms,
            heartbeat_interval_ms=max(100, settings.progress_session_timeout_ms // 3),
        )
        self.lanes: dict[int, Lane] = {}
        self.ready = False
        _wait_between_transactions(settings.progress_retry_backoff_ms / 1000)
        self._busy = asyncio.Lock()
        self._generation = 0  # changes whenever lanes open or close
        self._fatal: BaseException | None = None

    async def run(self, stopping: asyncio.Event) -> None:
        await self.consumer.start()
        try:
            await self._check_partitions()
            self.consumer.subscribe(self.input_names, listener=_Rebalance(self))
            while not stopping.is_set():
                generation = self._generation
                batch = await self._poll(stopping)
                if self._fatal is not None:
                    raise FoldFatal(str(self._fatal)) from self._fatal
                async with self._busy:  # no rebalance while positions move
                    if generation != self._generation:
                        # Lanes changed while polling: the batch may predate the positions
                        # set by the assignment. Drop it and start again from the commits.
                        for lane in self.lanes.values():
                            await self._seek_positions(lane)
                        continue
                    for lane in [lane for lane in self.lanes.values() if lane.failed]:
                        await self._recover_lane(lane)  # drops what this poll brought it
                    self._hand_out(batch)
        finally:
            self.ready = False
            async with self._busy:
                await self._close_lanes()
            await self.consumer.stop()

    async def _poll(self, stopping: asyncio.Event) -> dict[TopicPartition, list[Record]]:
        poll = asyncio.ensure_future(
            self.consumer.getmany(
                timeout_ms=200, max_records=self.settings.progress_fold_batch_size
            )
        )
        stop = asyncio.ensure_future(stopping.wait())
        await asyncio.wait({poll, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if not poll.done():
            poll.cancel()
            return {}
        batch: dict[TopicPartition, list[Record]] = poll.result()
        return batch

    async def _check_partitions(self) -> None:
        """Lanes need every input and output topic to have the same partition count."""
        counts: dict[str, int] = {}
        for name in [*self.input_names, self.updates_topic, self.state_topic]:
            parts = await self._partitions(name)
            if not parts:
                raise FoldFatal(f"topic {name} does not exist: create the topics first")
            counts[name] = len(parts)
        if len(set(counts.values())) != 1:
            raise FoldFatal(f"topics must have the same number of partitions: {counts}")

    async def _partitions(self, name: str) -> set[int]:
        for _ in range(50):
            parts = self.consumer.partitions_for_topic(name)
            if parts:
                return set(parts)
            await self.consumer._client.force_metadata_update()
            await asyncio.sleep(0.1)
        return set()

    # --- folding ------------------------------------------------------------------------

    def _hand_out(self, batch: dict[TopicPartition, list[Record]]) -> None:
        """Give each lane its records and wake every lane holding some (held records are
        looked at again after every poll, see `_release`)."""
        now = time.monotonic()
        for tp, records in batch.items():
            if (lane := self.lanes.get(tp.partition)) is not None:
                lane.held.setdefault(tp, []).extend(records)
                lane.delivered[tp] = now
                latest = max(_timestamp(record) for record in records)
                lane.watermarks[tp] = max(lane.watermarks.get(tp, latest), latest)
        for lane in self.lanes.values():
            if lane.held:
                lane.wake.set()

    async def _work(self, lane: Lane) -> None:
        """The lane's folding task: one transaction at a time, with all that was handed out
        meanwhile. Ends when the lane closes (after the transaction in hand) or fails."""
        try:
            while True:
                await lane.wake.wait()
                lane.wake.clear()
                if lane.closing:
                    return
                await self._pace(lane)  # meanwhile, more is handed out
                if not await self._fold_lane(lane):
                    lane.failed = True
                    return
        except FoldFatal:
            return  # `_fatal` is set: the polling loop stops the process
        except Exception as exc:  # a bug: stop the process rather than a silent lane
            log.exception("lane worker failed", extra={"lane": lane.number})
            self._fatal = exc

    async def _pace(self, lane: Lane) -> None:
        """Wait until `progress_transaction_interval_ms` after the lane's previous transaction
        began."""
        wait = lane.began + self.settings.progress_transaction_interval_ms / 1000 - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)

    async def _release(self, lane: Lane) -> dict[TopicPartition, list[Record]]:
        """The lane's held records that can be folded now, per partition.

        Within a poll the lane's topics are merged by timestamp, but a poll may bring one
        topic further in time than another (a backlog: the small `pipeline.tasks` partition
        is read to its end while the stage topics are not). So a record is released only up
        to the earliest watermark (latest timestamp delivered) of any input partition in a
        backlog (more than `progress_backlog_records` behind its last stable offset) or not
        fetched yet (one with nothing held releases nothing); a lane without a backlog releases
        everything, so a live stream, always a few records behind, is never held. The partition
        with the earliest watermark releases all it holds, so the lane always moves on.

        A partition that is behind but has delivered nothing for `_STALLED_AFTER_S` stops
        holding the others back, so one that never delivers cannot stall the lane (a busy
        consumer still working through other partitions of a backlog is not a stall); and a
        lane that has released nothing for as long releases everything it holds (decision
        0026).
        """
        cutoff = float("inf")
        backlog = self.settings.progress_backlog_records
        now = time.monotonic()
        for tp in self.consumer.assignment():
            if tp.partition != lane.number:
                continue
            lso = self.consumer.last_stable_offset(tp)  # None: not fetched yet
            if lso is not None and await self.consumer.position(tp) >= lso - backlog:
                continue  # caught up, or as good as: no constraint
            if lane.held.get(tp):
                cutoff = min(cutoff, lane.watermarks[tp])
            elif now - lane.delivered.get(tp, lane.opened) < _STALLED_AFTER_S:
                cutoff = float("-inf")  # its next records may come before anything held
        out: dict[TopicPartition, list[Record]] = {}
        for tp, records in list(lane.held.items()):
            n = 0
            while n < len(records) and _timestamp(records[n]) <= cutoff:
                n += 1
            if n:
                out[tp], lane.held[tp] = records[:n], records[n:]
            if not lane.held[tp]:
                del lane.held[tp]
        if out or not lane.held:
            lane.released = now
        elif now - lane.released > _STALLED_AFTER_S:
            log.warning("held records released out of order", extra={"lane": lane.number})
            out, lane.held = lane.held, {}
        self._pause_piling_up(lane)
        return out

    def _pause_piling_up(self, lane: Lane) -> None:
        """Stop fetching a partition whose held records pile up; resume it once released."""
        limit = self.settings.progress_fold_batch_size
        paused = self.consumer.paused()
        for tp in self.consumer.assignment():
            if tp.partition != lane.number:
                continue
            if len(lane.held.get(tp, ())) > limit:
                self.consumer.pause(tp)
            elif tp in paused:
                self.consumer.resume(tp)

    async def _fold_lane(self, lane: Lane) -> bool:
        """Fold what the lane can release in one transaction. False after a broker error: the
        transaction is not committed and the lane must go back to its committed state and
        offsets (`_recover_lane`)."""
        parts = await self._release(lane)
        if not parts:
            return True
        started = time.perf_counter()
        lane.began = time.monotonic()
        kafka = lane.producer.kafka
        try:
            await kafka.begin_transaction()
            updates = _PartitionWriter(kafka, self.updates_topic, lane.number)
            touched = await self._fold_records(lane, _merged(parts.values()), updates)
            await updates.flush()
            states = _PartitionWriter(kafka, self.state_topic, lane.number)
            for task_id, folded in touched.items():
                value, headers = encode_state(folded)
                await states.write(task_id.encode(), value, headers)
            positions = lane.positions | {tp: rs[-1].offset + 1 for tp, rs in parts.items()}
            value, headers = encode_positions(positions)
            await states.write(positions_key(lane.number), value, headers)
            await states.flush()
            await kafka.commit_transaction()
        except ProducerFenced as exc:
            self._fatal = exc
            raise FoldFatal(f"lane {lane.number} was fenced by a newer instance") from exc
        except (KafkaError, TimeoutError) as exc:
            log.warning("fold transaction failed", extra={"lane": lane.number, "error": repr(exc)})
            return False
        lane.positions = positions
        metrics.TRANSACTION_SECONDS.observe(time.perf_counter() - started)
        metrics.EVENTS_FOLDED.inc(sum(len(r) for r in parts.values()))
        s = self.settings
        lane.evict(time.monotonic(), s.progress_evict_after_s, s.progress_marker_retention_s)
        self._count_tasks()
        await self._report_positions(lane)
        return True

    async def _report_positions(self, lane: Lane) -> None:
        """Every few seconds, commit the lane's positions to the consumer group as well, so
        that lag monitoring and `kafka-consumer-groups` see the fold. Not what the fold resumes
        from (its transactions' own positions are), so a failure here only waits for the next
        time."""
        now = time.monotonic()
        if now - lane.reported_at < self.settings.progress_report_positions_s:
            return
        lane.reported_at = now
        assigned = self.consumer.assignment()
        offsets = {tp: offset for tp, offset in lane.positions.items() if tp in assigned}
        try:
            await self.consumer.commit(offsets)
        except KafkaError as exc:
            log.info("positions not reported", extra={"lane": lane.number, "error": repr(exc)})

    def _count_tasks(self) -> None:
        lanes = self.lanes.values()
        metrics.TASKS_IN_MEMORY.labels("state").set(sum(len(lane.states) for lane in lanes))
        metrics.TASKS_IN_MEMORY.labels("marker").set(sum(len(lane.finished) for lane in lanes))

    async def _fold_records(
        self, lane: Lane, records: Iterable[Record], updates: _PartitionWriter
    ) -> dict[str, Folded]:
        touched: dict[str, Folded] = {}
        ignored = 0
        published: Counter[str] = Counter()
        now = time.monotonic()
        for record in records:
            try:
                event: Input = (
                    decode_estimate(record.value)
                    if record.topic == self.eta_topic
                    else decode_event(record.value)
                )
            except DecodeError as exc:
                await lane.dead_letters.write(record, exc.reason, exc.detail)
                continue
            if event.task_id in lane.finished:  # evicted after it finished: nothing changes
                ignored += 1
                continue
            old = lane.states.get(event.task_id)
            try:
                new, changes = apply(old, event)
            except Exception as exc:  # a bug must not block the partition: dead-letter it
                log.exception("fold failed", extra={"event_id": event.event_id})
                await lane.dead_letters.write(record, "handler_error", repr(exc))
                continue
            if new is old:
                continue
            lane.keep(event.task_id, new, now)
            touched[event.task_id] = new
            if old is not None and new.ignored > old.ignored:
                ignored += 1
            for update in changes:
                await updates.write(update.task_id.encode(), encode_update(update))
                published[update.type.value] += 1
        metrics.IGNORED_AFTER_TERMINAL.inc(ignored)
        for kind, n in published.items():
            metrics.UPDATES_PUBLISHED.labels(kind).inc(n)
        return touched

    # --- lanes --------------------------------------------------------------------------

    async def _open_lanes(self, numbers: set[int]) -> None:
        self.ready = False
        try:
            lanes = await asyncio.gather(*(self._new_lane(n) for n in sorted(numbers)))
            self.lanes = {lane.number: lane for lane in lanes}
            await self._restore(self.lanes.values())
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
        producer = EventProducer(
            self.settings,
            SERVICE,
            transactional_id=self.settings.transactional_id(number),
            transaction_timeout_ms=self.settings.progress_transaction_timeout_ms,
            max_batch_size=256 * 1024,
            retry_backoff_ms=self.settings.progress_retry_backoff_ms,
        )
        await producer.start()  # InitProducerId: fences the zombie, ends its transaction
        return Lane(number, producer, DeadLetterWriter(producer, self.group_id))

    def _start_worker(self, lane: Lane) -> None:
        lane.worker = asyncio.create_task(self._work(lane), name=f"fold-lane-{lane.number}")

    async def _close_lanes(self) -> None:
        """Let every lane finish the transaction in hand, then close its producer."""
        lanes, self.lanes = list(self.lanes.values()), {}
        self._generation += 1
        await asyncio.gather(*(_stop_worker(lane) for lane in lanes))
        await asyncio.gather(*(lane.producer.stop() for lane in lanes), return_exceptions=True)

    async def _restore(self, lanes: Iterable[Lane]) -> None:
        """Read `progress.state` of the lanes to its end (read_committed): states, markers
        and positions."""
        by_tp = {TopicPartition(self.state_topic, lane.number): lane for lane in lanes}
        if not by_tp:
            return
        reader = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            group_id=None,
            client_id=f"{SERVICE}-restore-{self.settings.instance}",
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        await reader.start()
        try:
            reader.assign(list(by_tp))
            await reader.seek_to_beginning(*by_tp)
            ends = await reader.end_offsets(list(by_tp))
            for lane in by_tp.values():
                lane.states, lane.ended, lane.finished, lane.positions = {}, {}, {}, {}
            while [tp for tp in by_tp if await reader.position(tp) < ends[tp]]:
                batch = await reader.getmany(timeout_ms=500, max_records=10_000)
                now = time.monotonic()
                for tp, records in batch.items():
                    for record in records:
                        _restore_record(by_tp[tp], record, now)
        finally:
            await reader.stop()

    async def _seek_positions(self, lane: Lane) -> None:
        """Position the lane's inputs where its committed transactions stand (restored with
        its states, after the lane's producer fenced any zombie), not where the consumer may
        have fetched before. An input the lane never folded starts at the group's committed
        offset (written by a fold that committed offsets there, before 0029) or its beginning.
        Every position is set explicitly, so records fetched before this point are never
        skipped."""
        tps = [tp for tp in self.consumer.assignment() if tp.partition == lane.number]
        lane.held.clear()  # fetched before the seek: read again from the positions
        lane.watermarks.clear()
        self.consumer.resume(*tps)
        unknown = [tp for tp in tps if tp not in lane.positions]
        committed = (
            await self.consumer._coordinator.fetch_committed_offsets(unknown) if unknown else {}
        )
        missing = [tp for tp in unknown if tp not in committed or committed[tp].offset < 0]
        beginnings = await self.consumer.beginning_offsets(missing) if missing else {}
        for tp in tps:
            if tp in lane.positions:
                self.consumer.seek(tp, lane.positions[tp])
            elif tp in beginnings:
                self.consumer.seek(tp, beginnings[tp])
            else:
                self.consumer.seek(tp, committed[tp].offset)

    async def _recover_lane(self, lane: Lane) -> None:
        """After a failed transaction: a fresh producer (which aborts it), the committed
        states and offsets, a new worker."""
        await _stop_worker(lane)
        with contextlib.suppress(KafkaError):
            await lane.producer.stop()
        fresh = await self._new_lane(lane.number)
        self.lanes[lane.number] = fresh
        await self._restore([fresh])
        await self._seek_positions(fresh)
        self._start_worker(fresh)


async def _stop_worker(lane: Lane) -> None:
    lane.closing = True
    lane.wake.set()
    if lane.worker is not None:
        await asyncio.gather(lane.worker, return_exceptions=True)


class _PartitionWriter:
    """A transaction's records for one partition, sent in batches: aiokafka's `send` checks
    the topic's metadata for every record, a tenth of the fold's CPU; `send_batch` does it
    once per batch. Records keep their order; `flush` sends what is left."""

    def __init__(self, kafka: AIOKafkaProducer, topic: str, partition: int) -> None:
        self.kafka, self.topic, self.partition = kafka, topic, partition
        self.batch: BatchBuilder | None = None

    async def write(
        self, key: bytes, value: bytes, headers: list[tuple[str, bytes]] | None = None
    ) -> None:
        headers = headers or []  # the C batch builder takes only a list
        if self.batch is None:
            self.batch = self.kafka.create_batch()
        if self.batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
            await self.flush()  # full: send it, start the next one
            self.batch = self.kafka.create_batch()
            if self.batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                raise ValueError(f"a record of {len(value)} bytes exceeds the batch size")

    async def flush(self) -> None:
        if self.batch is not None and self.batch.record_count():
            await self.kafka.send_batch(self.batch, self.topic, partition=self.partition)
        self.batch = None


def _restore_record(lane: Lane, record: Record, now: float) -> None:
    """One `progress.state` record into the lane: its positions, a running task's state, or
    a finished task's marker (its full state is not needed again, see `Lane`)."""
    if is_positions(record.headers):
        try:
            lane.positions = decode_positions(record.value)
        except DecodeError as exc:
            skip_record(SERVICE, record, exc)
        return
    task_id = record.key.decode(errors="replace") if record.key else ""
    try:
        folded = decode_state(record.value, record.headers)
    except DecodeError as exc:
        skip_record(SERVICE, record, exc)  # not the fold's: the task is restored without it
        return
    lane.states.pop(task_id, None)
    lane.ended.pop(task_id, None)
    lane.finished.pop(task_id, None)
    if folded is None:
        return
    if folded.task.status.terminal:
        lane.finished[task_id] = now
    else:
        lane.states[task_id] = folded


def _merged(parts: Iterable[list[Record]]) -> Iterable[Record]:
    """The lane's records, each partition in offset order, interleaved by timestamp, so that
    a task's events from different stages come in about the order they happened."""
    return heapq.merge(*parts, key=_timestamp)


def _wait_between_transactions(seconds: float) -> None:
    """How long aiokafka waits before asking again to add a partition to a new transaction
    while the broker still writes the markers of the previous one (CONCURRENT_TRANSACTIONS).

    aiokafka fixes it at 20 ms in a module constant (KAFKA-5477); a lane that commits every few
    milliseconds would spend most of its time in that wait (decision 0027). Only transactional
    producers meet this error, and in this process they are all the fold's lanes.
    """
    if not hasattr(aiokafka.producer.sender, "BACKOFF_OVERRIDE"):
        raise RuntimeError("aiokafka no longer has producer.sender.BACKOFF_OVERRIDE: see 0027")
    aiokafka.producer.sender.BACKOFF_OVERRIDE = seconds


#: How long a partition that is behind may deliver nothing before it no longer holds back
#: the lane's other partitions.
_STALLED_AFTER_S = 5.0


def _timestamp(record: Record) -> int:
    return int(record.timestamp)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, service: FoldService) -> None:
        self.service = service

    async def on_partitions_revoked(self, revoked: Any) -> None:
        async with self.service._busy:  # the lane's transaction in hand finishes first
            self.service.ready = False
            await self.service._close_lanes()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        async with self.service._busy:
            await self.service._open_lanes({tp.partition for tp in assigned})
