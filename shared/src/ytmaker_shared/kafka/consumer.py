"""The consumer loop every service shares: consume, decode, handle, commit.

- Offsets are committed by hand, after the handler returned: at-least-once, so handlers are
  idempotent (they deduplicate on `event_id` or on what they already made).
- A record that cannot be decoded (any bytes: `events.decode` raises only DecodeError), or
  whose handler refuses it (an error that is not transient), goes to the DLQ with its reason;
  the loop moves on.
- A transient failure (`Retry` from a handler, or any error `transient.is_transient` accepts:
  OS, network and broker errors, timeouts) keeps the loop on the same record, handled again
  after `Retry.delay_s` or an exponential backoff, so a partition never skips ahead of an
  unfinished record and no effect is lost to a hiccup.
- Partitions of one batch are handled concurrently (at most `max_in_flight`), each in order.
- `stop()` lets the record in hand finish, commits what was done, and leaves the group.

Subclasses may override three hooks: `handled(tp, next_offset)` (default: commit at once; a
loop whose work outlives its handler commits later through `commit`), `on_revoked(partitions)`
and `on_assigned(partitions)` (called by the rebalance listener, after the loop's own duties).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import ConsumerRecord

from ytmaker_shared.events import DecodeError, Event, decode
from ytmaker_shared.kafka.admin import start_when_reachable
from ytmaker_shared.kafka.connection import aiokafka_connection, close_client
from ytmaker_shared.kafka.dlq import DeadLetterWriter
from ytmaker_shared.kafka.fetchwait import CONSUMER_TIMEOUT_MS
from ytmaker_shared.kafka.producer import EventProducer
from ytmaker_shared.logging import log_context
from ytmaker_shared.metrics import (
    CONSUMER_LAG,
    EVENTS_CONSUMED,
    HANDLER_RETRIES,
    HANDLER_SECONDS,
)
from ytmaker_shared.settings import ServiceSettings
from ytmaker_shared.topics import Topic
from ytmaker_shared.transient import backoff_s, is_transient

log = logging.getLogger(__name__)

Record: TypeAlias = ConsumerRecord[bytes, bytes]
Handler = Callable[[Event, Record], Awaitable[None]]


class Retry(Exception):
    """Raised by a handler for a transient failure: handle the same record again later."""

    def __init__(self, reason: str, delay_s: float = 1.0) -> None:
        super().__init__(reason)
        self.delay_s = delay_s


class ConsumerLoop:
    """One consumer group member: `await loop.run()` until `loop.stop()`."""

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        service: str,
        group_id: str,
        topics: Sequence[Topic],
        handler: Handler,
        producer: EventProducer,
        auto_offset_reset: str = "earliest",
    ) -> None:
        self.settings = settings
        self.service = service
        self.group_id = group_id
        self.topic_names = [settings.topics.name(t) for t in topics]
        self.handler = handler
        self.dead_letters = DeadLetterWriter(producer, group_id)
        self.kafka = AIOKafkaConsumer(
            **aiokafka_connection(settings),
            group_id=group_id,
            client_id=f"{service}-{settings.instance}",
            enable_auto_commit=False,
            auto_offset_reset=auto_offset_reset,
            isolation_level="read_committed",
            consumer_timeout_ms=CONSUMER_TIMEOUT_MS,
            max_poll_interval_ms=int(settings.consumer_max_poll_interval_s * 1000),
        )
        self._stopping = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._commit_lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(settings.max_in_flight)
        self._catch_up: dict[TopicPartition, int] = {}
        self._assigned = False
        self.ready = False

    async def start(self) -> None:
        await start_when_reachable(self.kafka, self.settings)
        self.kafka.subscribe(self.topic_names, listener=_Rebalance(self))

    def stop(self) -> None:
        """Ask the loop to finish the record in hand and return; safe from a signal handler."""
        self._stopping.set()

    async def run(self) -> None:
        """Consume until `stop()`; then commit and leave the group. Starts the consumer."""
        await self.start()
        try:
            while not self._stopping.is_set():
                batch = await self._poll()
                if batch:
                    self._idle.clear()
                    try:
                        await asyncio.gather(
                            *(self._handle_partition(tp, rs) for tp, rs in batch.items())
                        )
                    finally:
                        self._idle.set()
                await self._update_lag()
        finally:
            await close_client(self.kafka.stop(), self.group_id)  # leaves the group; all committed

    async def _poll(self) -> dict[TopicPartition, list[Record]]:
        poll = asyncio.ensure_future(
            self.kafka.getmany(timeout_ms=500, max_records=self.settings.consumer_batch_size)
        )
        stopping = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({poll, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not poll.done():
            poll.cancel()
            return {}
        batch: dict[TopicPartition, list[Record]] = poll.result()
        return batch

    async def _handle_partition(self, tp: TopicPartition, records: list[Record]) -> None:
        async with self._slots:
            done: int | None = None
            for record in records:
                if self._stopping.is_set() or tp not in self.kafka.assignment():
                    break
                if not await self._handle_record(record):
                    break
                done = record.offset
            if done is not None:
                await self.handled(tp, done + 1)

    async def _handle_record(self, record: Record) -> bool:
        """Handle one record, retrying transient failures; False when stopped before done."""
        EVENTS_CONSUMED.labels(self.service, record.topic).inc()
        try:
            event = decode(record.value)
        except DecodeError as exc:
            return await self._dead_letter(record, exc.reason, exc.detail)
        with log_context(
            task_id=event.task_id, event_id=event.event_id, correlation_id=event.correlation_id
        ):
            attempt = 0
            while True:
                attempt += 1
                started = time.perf_counter()
                try:
                    await self.handler(event, record)
                    return True
                except Retry as retry:
                    delay, reason = retry.delay_s, str(retry)
                except Exception as exc:
                    if not is_transient(exc):
                        log.exception("handler refused the record")
                        return await self._dead_letter(record, "handler_error", repr(exc))
                    delay, reason = backoff_s(attempt), repr(exc)
                finally:
                    HANDLER_SECONDS.labels(self.service, event.type).observe(
                        time.perf_counter() - started
                    )
                HANDLER_RETRIES.labels(self.service, record.topic).inc()
                log.warning(
                    "transient failure, retrying the same record",
                    extra={"reason": reason, "attempt": attempt, "delay_s": round(delay, 3)},
                )
                if await self._stopped_within(delay):
                    return False

    async def _dead_letter(self, record: Record, reason: str, detail: str) -> bool:
        """Send the record to the DLQ, waiting out a broker that is away; False when stopped
        first (the record stays uncommitted and comes again)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                await self.dead_letters.write(record, reason, detail)
                return True
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning("dead letter not written, retrying", extra={"error": repr(exc)})
            if await self._stopped_within(backoff_s(attempt)):
                return False

    async def _stopped_within(self, seconds: float) -> bool:
        """Wait `seconds`, or less if the loop is stopped meanwhile; True when stopped."""
        try:
            async with asyncio.timeout(seconds):
                await self._stopping.wait()
            return True
        except TimeoutError:
            return False

    async def handled(self, tp: TopicPartition, next_offset: int) -> None:
        """Every record of `tp` below `next_offset` has been handled. Default: commit it."""
        await self.commit(tp, next_offset)

    async def on_revoked(self, partitions: set[TopicPartition]) -> None:
        """Partitions are being taken away; the batch in hand has finished and committed."""

    async def on_assigned(self, partitions: set[TopicPartition]) -> None:
        """Partitions were given to this member."""

    async def commit(self, tp: TopicPartition, next_offset: int) -> None:
        """Commit `tp` up to `next_offset`; a failed commit is logged (records come again)."""
        async with self._commit_lock:
            try:
                await self.kafka.commit({tp: next_offset})
            except (CommitFailedError, KafkaError) as exc:
                # The partition moved to another member: it will see these records again.
                log.warning("commit failed", extra={"partition": str(tp), "error": repr(exc)})

    async def _update_lag(self) -> None:
        """Export the lag of each assigned partition; become ready once caught up."""
        positions: dict[TopicPartition, int] = {}
        for tp in self.kafka.assignment():
            try:
                async with asyncio.timeout(1.0):
                    positions[tp] = await self.kafka.position(tp)
            except (TimeoutError, KafkaError):
                continue
            highwater = self.kafka.highwater(tp)
            if highwater is not None:
                CONSUMER_LAG.labels(self.service, tp.topic, str(tp.partition)).set(
                    max(0, highwater - positions[tp])
                )
        if self._assigned and not self.ready:
            self.ready = all(positions.get(tp, -1) >= end for tp, end in self._catch_up.items())
            if self.ready:
                log.info("caught up on assignment", extra={"partitions": len(self._catch_up)})


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: ConsumerLoop) -> None:
        self.loop = loop

    async def on_partitions_revoked(self, revoked: Any) -> None:
        # Let the batch in hand finish and commit while the partitions are still ours.
        await self.loop._idle.wait()
        await self.loop.on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        loop = self.loop
        loop.ready = False
        loop._catch_up = dict(await loop.kafka.end_offsets(list(assigned))) if assigned else {}
        loop._assigned = True
        log.info("partitions assigned", extra={"partitions": sorted(map(str, assigned))})
        await loop.on_assigned(set(assigned))
