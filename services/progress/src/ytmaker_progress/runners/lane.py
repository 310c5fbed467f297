"""One lane's folding task (decision 0038): it folds what the polling loop hands out, sends
each update as soon as its piece is folded, and ends its transaction with a checkpoint every
`progress_checkpoint_interval_ms` and when the lane closes.

A checkpoint does not stop the folding (decision 0096): the transaction is handed over to a
task of its own, which waits for its updates to be acknowledged, writes the states and the
checkpoint record and commits, while the lane's other producer begins the next transaction.
The next transaction's first updates wait only for the handed-over ones to be acknowledged (so
that they follow them in the log); the next handover waits for the commit.

A round is folded in pieces of `PIECE` records, the clock looked at after each (decision
0083): however big a backlog, a checkpoint comes when due (a transaction never nears its
timeout) and the event loop (the group's heartbeats, the other lanes, the polling loop) runs
between pieces. A closing lane stops after the piece in hand: its positions say where the next
owner starts.

A failed write, or a producer fenced by a newer one, marks the lane for the polling loop
(`FoldService._recover_lane`), which recovers it only while this member still owns it; a lane
fenced while closing (revoked) just stops: the new owner adopts what it wrote. A bug stops the
process (`fatal`)."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError, ProducerFenced
from aiokafka.structs import ConsumerRecord

from ytmaker_progress import metrics
from ytmaker_progress.fold import Input, apply
from ytmaker_progress.folded import Folded
from ytmaker_progress.lanes import BATCH_BYTES, Commit, Lane
from ytmaker_progress.positions import (
    encode_checkpoint,
    logical_names,
    positions_header,
    positions_key,
)
from ytmaker_progress.records import decode_estimate, encode_marker, encode_state, encode_update
from ytmaker_progress.release import Input as ReleaseInput
from ytmaker_progress.release import record_time, release
from ytmaker_progress.settings import ProgressSettings
from ytmaker_shared.events import DecodeError
from ytmaker_shared.events import decode as decode_event
from ytmaker_shared.kafka import DeadLetterWriter
from ytmaker_shared.kafka.batches import PartitionWriter, raise_if_transaction_failed
from ytmaker_shared.kafka.growth import PartitionsGrew, PartitionWatch
from ytmaker_shared.topics import Topic, misplaced

log = logging.getLogger(__name__)

Record: TypeAlias = ConsumerRecord[bytes, bytes]

#: Records folded between two looks at the clock (about 50 ms of CPU on this machine).
PIECE = 1_000


class FoldFatal(RuntimeError):
    """The fold cannot go on in this process (topics that do not match, a bug in a lane); the
    process must exit and be restarted."""


class LaneWorker:
    """Folds `lane`. `consumer` is the fold's consumer: the worker reads where its inputs
    stand and pauses those whose held records pile up; only the polling loop moves them.
    `watch.started` is how many partitions each topic had when the fold started (by name): an
    event read outside its task's partition is dead-lettered (decision 0123), once the watch
    has confirmed the counts (decision 0138)."""

    def __init__(
        self,
        lane: Lane,
        settings: ProgressSettings,
        consumer: AIOKafkaConsumer,
        dead_letters: DeadLetterWriter,
        fatal: Callable[[BaseException], None],
        watch: PartitionWatch,
    ) -> None:
        self.lane = lane
        self.settings = settings
        self.consumer = consumer
        self.dead_letters = dead_letters
        self.fatal = fatal
        self.watch = watch
        self.eta_topic = settings.topics.name(Topic.PROGRESS_ETA)
        self.updates_topic = settings.topics.name(Topic.PROGRESS_UPDATES)
        self.state_topic = settings.topics.name(Topic.PROGRESS_STATE)
        self.names = logical_names(settings.topics)

    async def run(self) -> None:
        """The lane's folding task: folds what was handed out, checkpoints when due. Ends when
        the lane closes (with a last checkpoint) or a write fails."""
        lane = self.lane
        if lane.unsaved:
            lane.wake.set()  # what the restore found to write: checkpoint it even if idle
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._until_checkpoint()):
                        await lane.wake.wait()
                lane.wake.clear()
                if not await self._fold_lane():
                    lane.failed = True
                    return
                if lane.closing:
                    if not await self._checkpoint_now():
                        lane.failed = True
                    return
        except PartitionsGrew as exc:  # logged where found: the process restarts
            self.fatal(exc)
        except Exception as exc:  # a bug: stop the process rather than a silent lane
            log.exception("lane worker failed", extra={"lane": lane.number})
            self.fatal(exc)

    def _until_checkpoint(self) -> float | None:
        lane = self.lane
        if not lane.in_transaction:
            return 0.0 if lane.unsaved else None  # states adopted by the restore: save them
        due = lane.began + self.settings.progress_checkpoint_interval_ms / 1000
        return max(0.0, due - time.monotonic())

    async def _fold_lane(self) -> bool:
        """Fold and send what the lane can release, a piece at a time; checkpoint when due.
        False after a broker error or a fencing: the polling loop decides (`_recover_lane`)."""
        lane = self.lane
        if _failed(lane.committing):
            return False
        try:
            ready = await self._release()
            records = list(_merged(ready.values()))
            for start in range(0, len(records), PIECE):
                if lane.closing:
                    break  # revoked or stopping: the positions say where the next owner starts
                piece = records[start : start + PIECE]
                started = time.perf_counter()
                if lane.updates is None:
                    if not await self._after_handed_over():
                        return False
                    raise_if_transaction_failed(lane.producer.kafka)
                    await lane.producer.kafka.begin_transaction()
                    lane.began = time.monotonic()
                    lane.updates = PartitionWriter(
                        lane.producer.kafka,
                        self.updates_topic,
                        lane.number,
                        batch_bytes=BATCH_BYTES,
                    )
                await self._fold_records(piece, lane.updates)
                await lane.updates.flush()
                metrics.FOLD_SECONDS.observe(time.perf_counter() - started)
                metrics.EVENTS_FOLDED.inc(len(piece))
                if self._until_checkpoint() == 0 and not await self._hand_over():
                    return False
                await asyncio.sleep(0)  # heartbeats, the other lanes and the polls run
            if lane.unsaved and self._until_checkpoint() == 0:
                return await self._hand_over()
        except ProducerFenced:
            self._fenced("fold")
            self._abandon()
            return False
        except (KafkaError, TimeoutError) as exc:
            log.warning("fold write failed", extra={"lane": lane.number, "error": repr(exc)})
            self._abandon()
            return False
        return True

    def _abandon(self, *writers: PartitionWriter | None) -> None:
        """The transaction failed: what it sent is not waited for (`_recover_lane` or the
        next owner reads the log instead)."""
        for writer in (self.lane.updates, *writers):
            if writer is not None:
                writer.abandon()

    def _fenced(self, where: str) -> None:
        """The broker refused the lane's producer: a newer producer of its transactional id
        (a new owner after a rebalance, or this process's own recovery) or the transaction's
        timeout aborted its transaction. Not fatal: what it wrote stays for the owner to adopt."""
        lane = self.lane
        lane.fenced = True
        metrics.LANES_FENCED.inc()
        log.info(
            "lane fenced",
            extra={"lane": lane.number, "during": where, "closing": lane.closing},
        )

    async def _release(self) -> dict[TopicPartition, list[Record]]:
        """The lane's held records that can be folded now, per partition (`release.py`)."""
        lane = self.lane
        inputs = []
        for tp in self.consumer.assignment():
            if tp.partition != lane.number:
                continue
            lso = self.consumer.last_stable_offset(tp)  # None: not fetched yet
            behind = None if lso is None else lso - await self.consumer.position(tp)
            inputs.append(ReleaseInput(tp, behind, lane.delivered.get(tp)))
        now = time.monotonic()
        out = release(
            lane.held,
            lane.watermarks,
            inputs,
            now=now,
            opened_at=lane.opened,
            released_at=lane.released,
            backlog_records=self.settings.progress_backlog_records,
        )
        if out.forced:
            log.warning("held records released out of order", extra={"lane": lane.number})
        if out.ready or not out.held:
            lane.released = now
        lane.held = out.held
        self._pause_piling_up()
        return out.ready

    def _pause_piling_up(self) -> None:
        """Stop fetching a partition whose held records pile up; resume it once released."""
        lane = self.lane
        limit = self.settings.progress_fold_batch_size
        paused = self.consumer.paused()
        for tp in self.consumer.assignment():
            if tp.partition != lane.number:
                continue
            if len(lane.held.get(tp, ())) > limit:
                self.consumer.pause(tp)
            elif tp in paused:
                self.consumer.resume(tp)

    async def _fold_records(self, records: Iterable[Record], updates: PartitionWriter) -> None:
        """Fold `records` in order into the lane's states; every update goes to `updates`,
        the last of each batch with the lane's positions after its event (decision 0109).

        An event read outside its task's partition (a producer that chose the partition, a
        hostile writer) is dead-lettered as `wrong_partition`, like one that cannot be read:
        folded, it would be a second state of its task in this lane, with updates in a
        partition of `progress.updates` that is not the task's (decision 0123). Unless the
        topic has grown: then the process stops (PartitionsGrew, decision 0138)."""
        lane = self.lane
        partitions, read_at = self.watch.started, time.monotonic()
        ignored = behind = 0
        published: Counter[str] = Counter()
        now = time.monotonic()
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            if record.offset < lane.positions.get(tp, 0):
                behind += 1  # folded already: fetched before a seek (a bug if ever seen)
                continue
            lane.positions[tp] = record.offset + 1
            try:
                event: Input = (
                    decode_estimate(record.value)
                    if record.topic == self.eta_topic
                    else decode_event(record.value)
                )
            except DecodeError as exc:
                await self.dead_letters.write(record, exc.reason, exc.detail)
                continue
            if error := misplaced(event.task_id, record.partition, partitions[record.topic]):
                await self.watch.confirm(read_at)
                await self.dead_letters.write(record, error.reason, error.detail)
                continue
            if event.task_id in lane.finished:  # evicted after it finished: nothing changes
                ignored += 1
                continue
            old = lane.states.get(event.task_id)
            try:
                new, changes = apply(old, event)
            except Exception as exc:  # a bug must not block the partition: dead-letter it
                log.exception("fold failed", extra={"event_id": event.event_id})
                await self.dead_letters.write(record, "handler_error", repr(exc))
                continue
            if new is old:
                continue
            lane.keep(event.task_id, new, now)
            if old is not None and new.ignored > old.ignored:
                ignored += 1
            if changes:
                ending = positions_header(lane.positions, self.names)
                for update in changes:
                    await updates.write(update.task_id.encode(), encode_update(update), (), ending)
                    published[update.type.value] += 1
        metrics.IGNORED_AFTER_TERMINAL.inc(ignored)
        if behind:
            log.error(
                "records behind the lane's positions skipped",
                extra={"lane": lane.number, "records": behind},
            )
        for kind, n in published.items():
            metrics.UPDATES_PUBLISHED.labels(kind).inc(n)

    async def _after_handed_over(self) -> bool:
        """Wait until the broker has the updates of the transaction handed over last (this
        transaction's must follow them in the log); False if they failed."""
        committing = self.lane.committing
        if committing is not None and not committing.acked.is_set():
            acked = asyncio.ensure_future(committing.acked.wait())
            try:
                await asyncio.wait([acked, committing.task], return_when=asyncio.FIRST_COMPLETED)
            finally:
                acked.cancel()  # the commit failed before its updates were acknowledged
        return not _failed(committing)

    async def _hand_over(self) -> bool:
        """End the open transaction with a checkpoint, committed by a task of its own while
        the lane goes on with its other producer; the previous handover must have committed
        first. Without an open transaction (states adopted by the restore, nothing folded
        since), one is begun for the checkpoint alone. False if the previous one failed."""
        lane = self.lane
        if lane.committing is not None and not await lane.committing.task:
            return False
        acked = asyncio.Event()
        task = asyncio.create_task(
            self._commit(
                lane.turn,
                lane.updates,
                lane.touched,
                lane.retired,
                dict(lane.positions),
                lane.began,
                acked,
            ),
            name=f"fold-lane-{lane.number}-checkpoint",
        )
        lane.committing = Commit(task, acked)
        lane.updates, lane.touched, lane.retired = None, {}, {}
        lane.turn = 1 - lane.turn
        return True

    async def _checkpoint_now(self) -> bool:
        """The closing lane's last checkpoint, committed before returning."""
        lane = self.lane
        if lane.unsaved and not await self._hand_over():
            return False
        return lane.committing is None or await lane.committing.task

    async def _commit(
        self,
        turn: int,
        updates: PartitionWriter | None,
        touched: dict[str, Folded],
        retired: dict[str, str | None],
        positions: dict[TopicPartition, int],
        began: float,
        acked: asyncio.Event,
    ) -> bool:
        """Commit a handed-over transaction: wait for its updates, write the markers and
        tombstones of the tasks `retired`, the states it changed (after them: a task's latest
        state wins) and a checkpoint (`positions`, the end of the updates) on `progress.state`.
        False after a broker error or a fencing; the lane is woken to notice (a recovery's
        restore finds the retired tasks again)."""
        lane = self.lane
        started = time.perf_counter()
        kafka = lane.producers[turn].kafka
        states = None
        try:
            raise_if_transaction_failed(kafka)
            if updates is None:
                await kafka.begin_transaction()
                began = time.monotonic()
            else:
                end = await updates.acked_end()
                if end is not None:
                    lane.updates_end = end
            acked.set()
            states = PartitionWriter(kafka, self.state_topic, lane.number, batch_bytes=BATCH_BYTES)
            for task_id, status in retired.items():
                value, headers = (None, []) if status is None else encode_marker(status)
                await states.write(task_id.encode(), value, headers)
            for task_id, folded in touched.items():
                value, headers = encode_state(folded)
                await states.write(task_id.encode(), value, headers)
            value, headers = encode_checkpoint(
                positions, lane.updates_end or 0, self.settings.topics
            )
            await states.write(positions_key(lane.number), value, headers)
            await states.flush()
            raise_if_transaction_failed(kafka)
            await kafka.commit_transaction()
        except ProducerFenced:
            self._fenced("checkpoint")
            self._abandon(updates, states)
            lane.wake.set()
            return False
        except (KafkaError, TimeoutError) as exc:
            log.warning("checkpoint failed", extra={"lane": lane.number, "error": repr(exc)})
            self._abandon(updates, states)
            lane.wake.set()
            return False
        metrics.TRANSACTION_SECONDS.observe(time.perf_counter() - started)
        metrics.TRANSACTION_OPEN_SECONDS.observe(time.monotonic() - began)
        s = self.settings
        lane.evict(time.monotonic(), s.progress_evict_after_s, s.progress_marker_retention_s)
        await self._report_positions()
        return True

    async def _report_positions(self) -> None:
        """Every few seconds, commit the lane's positions to the consumer group as well, so
        that lag monitoring and `kafka-consumer-groups` see the fold. Not what the fold resumes
        from (its own records are), so a failure here only waits for the next time."""
        lane = self.lane
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


def _failed(commit: Commit | None) -> bool:
    """Whether a handed-over transaction failed to commit: the lane must be recovered."""
    return commit is not None and commit.task.done() and not commit.task.result()


def _merged(parts: Iterable[list[Record]]) -> Iterable[Record]:
    """The lane's records, each partition in offset order, interleaved by timestamp, so that
    a task's events from different stages come in about the order they happened."""
    return heapq.merge(*parts, key=record_time)
