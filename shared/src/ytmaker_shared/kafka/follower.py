"""Following a topic on librdkafka: the gateway's fan-out reads `progress.updates` this way
(decision 0110).

A `LogFollower` reads every partition of one topic from given offsets, without a consumer
group, and hands its caller the records in batches. librdkafka (confluent-kafka) fetches,
decodes and queues the records in its own C threads, ahead of the caller; a thread of this
class takes what is queued and hands it to the event loop, one wake-up a batch. aiokafka did all
of that in Python on the event loop: ~1.2 ms of CPU a fetch against ~0.4 here, on the
benchmark's machine, for the same records (decision 0110).

The broker ends a fetch as soon as a record arrives (`fetch.min.bytes` 1), so a long fetch wait
costs no latency and keeps an idle follower quiet. A record librdkafka reports as an error
(a partition gone, a broker unreachable: it retries by itself) is logged and left out; a record
is never repeated or skipped, librdkafka keeps each partition's position.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient

from ytmaker_shared.kafka.connection import librdkafka_connection
from ytmaker_shared.kafka.reader import TopicMissing
from ytmaker_shared.settings import ServiceSettings

log = logging.getLogger(__name__)

#: How long the hand-over thread waits for records (or for room) before looking whether it
#: must stop: the longest `stop()` waits for it.
WAIT_S = 0.2


class Followed(NamedTuple):
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class LogFollower:
    """`await start(topic)` (the ends of its partitions, where `follow()` may begin), then
    `follow(offsets)`, then `await poll()` batch after batch; `await stop()` at the end."""

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        name: str,
        read_uncommitted: bool = False,
        fetch_wait_ms: int = 500,
        max_records: int = 1000,
    ) -> None:
        self.max_records = max_records
        self._consumer = Consumer(
            {
                **librdkafka_connection(settings),
                "client.id": f"{name}-{settings.instance}",
                # confluent-kafka wants a group; this follower never joins nor commits to it
                "group.id": f"{name}-{settings.instance}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_uncommitted" if read_uncommitted else "read_committed",
                "fetch.wait.max.ms": fetch_wait_ms,
                "fetch.min.bytes": 1,
                "queued.max.messages.kbytes": 16 * 1024,  # fetched ahead, not yet taken
                "socket.nagle.disable": True,
                "logger": log,
            }
        )
        self.topic = ""
        self._settings = settings
        self._admin: AdminClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._batches: asyncio.Queue[list[Followed]] = asyncio.Queue()
        self._room = threading.Semaphore(1)  # one batch handed over and not yet taken
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    async def start(self, topic: str, *, timeout_s: float = 60.0) -> dict[int, int]:
        """Wait (up to `timeout_s`) for `topic`; returns the end of each of its partitions.
        Raises TopicMissing."""
        self._loop = asyncio.get_running_loop()
        self.topic = topic
        partitions = await self._partitions(topic, timeout_s)
        ends = await asyncio.gather(
            *(asyncio.to_thread(self._end, TopicPartition(topic, p), timeout_s) for p in partitions)
        )
        return dict(zip(partitions, ends, strict=True))

    def follow(self, offsets: Mapping[int, int]) -> None:
        """Read each partition of the topic from its offset."""
        assert self._loop is not None, "start() first"
        self._consumer.assign(
            [TopicPartition(self.topic, p, offset) for p, offset in sorted(offsets.items())]
        )
        self._thread = threading.Thread(target=self._hand_over, name=f"follow-{self.topic}")
        self._thread.start()

    async def poll(self, stopping: asyncio.Event, timeout_s: float = 1.0) -> list[Followed]:
        """The records queued since the last poll, in offset order per partition (at most
        `max_records`); empty after `timeout_s`, or when `stopping` is set meanwhile."""
        take = asyncio.ensure_future(self._batches.get())
        stop = asyncio.ensure_future(stopping.wait())
        try:
            await asyncio.wait({take, stop}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # cancelled: the batch stays queued for the next poll
            take.cancel()
            raise
        finally:
            stop.cancel()
        if not take.done():
            take.cancel()
            return []
        self._room.release()
        return take.result()

    async def partition_counts(self) -> dict[str, int] | None:
        """How many partitions the topic has now, asked of the cluster (a `PartitionWatch`'s
        `counts`); None when no broker answered. Asked through a client of its own: the
        consumer's `list_topics`, while the hand-over thread polls it, did not return."""
        if self._admin is None:
            config: dict[str, Any] = {**librdkafka_connection(self._settings), "logger": log}
            self._admin = AdminClient(config)
        try:
            found = await asyncio.to_thread(self._admin.list_topics, self.topic, 5.0)
        except KafkaException:
            return None
        metadata = found.topics.get(self.topic)
        if metadata is None or metadata.error is not None:
            return None
        return {self.topic: len(metadata.partitions)}

    async def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        await asyncio.to_thread(self._consumer.close)
        self._admin = None  # librdkafka closes a handle that is let go

    # --- librdkafka's side ------------------------------------------------------------------

    async def _partitions(self, topic: str, timeout_s: float) -> list[int]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            try:
                found = await asyncio.to_thread(self._consumer.list_topics, topic, 5.0)
            except KafkaException as exc:  # no broker yet: like a topic not there yet
                log.info("waiting for the broker", extra={"error": str(exc)})
            else:
                metadata = found.topics.get(topic)
                if metadata is not None and metadata.error is None and metadata.partitions:
                    return sorted(metadata.partitions)
            if loop.time() > deadline:
                raise TopicMissing(f"topic {topic} does not exist after {timeout_s:.0f}s")
            await asyncio.sleep(0.2)

    def _end(self, tp: TopicPartition, timeout_s: float) -> int:
        """The partition's end, asked again (up to `timeout_s`) while the broker cannot tell
        (a topic just made: its leader not yet known to this client or to the broker)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                _, high = self._consumer.get_watermark_offsets(tp, timeout=5.0, cached=False)
                return int(high)
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.1)  # in a worker thread

    def _hand_over(self) -> None:
        """The thread: take what librdkafka has queued (waiting for some), hand it to the
        event loop, and take no more until the loop has taken that. It lives as long as the
        follower: an unexpected error is logged and the next look comes after a wait."""
        while not self._stopping.is_set():
            if not self._room.acquire(timeout=WAIT_S):
                continue
            try:
                handed = self._take()
            except Exception:
                log.exception("follower hand-over failed")
                handed = False
                self._stopping.wait(WAIT_S)
            if not handed:
                self._room.release()

    def _take(self) -> bool:
        """Hand the loop what is queued, waiting up to `WAIT_S` for the first record; whether
        there was anything. `consume(n, timeout)` would wait for n records: `poll` waits for
        the first, then `consume(n, 0)` takes what is queued behind it."""
        assert self._loop is not None
        first = self._consumer.poll(WAIT_S)
        if first is None:
            return False
        records = [first]
        if self.max_records > 1:
            records += self._consumer.consume(self.max_records - 1, 0)
        batch = [_followed(record) for record in records if not _failed(record)]
        if batch:
            self._loop.call_soon_threadsafe(self._batches.put_nowait, batch)
        return bool(batch)


def _followed(record: Message) -> Followed:
    return Followed(record.partition(), record.offset(), record.key(), record.value())  # type: ignore[arg-type]


def _failed(record: Message) -> bool:
    error = record.error()
    if error is None:
        return False
    log.warning(
        "follower error",
        extra={"topic": record.topic(), "partition": record.partition(), "error": str(error)},
    )
    return True
