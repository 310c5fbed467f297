"""The fan-out: one Kafka consumer per gateway process, shared by all its clients
(docs/architecture.md "The processes"; docs/decisions/0030-gateway-fanout-and-exact-replay.md).

Its follower (`LogFollower`, on librdkafka: decision 0110) reads every partition of
`progress.updates` from their ends, so every replica sees every update. For each record the hub
advances its position, caches the update and offers it to the subscriptions of its task and
project. All of that is synchronous within one event-loop step, so `register()` always sees a
position that splits the log cleanly: below it, the replay; from it on, the subscription's own
buffer.

A task's updates are one stream, in its partition (Kafka's default partitioner of its id,
`ytmaker_shared.topics.task_partition`), ordered and resumed by that partition's offsets: a
record read in another partition (a hostile writer, a producer that chose its partition) is
skipped and counted like one that cannot be decoded (`wrong_partition`, decision 0123), and so
is a record keyed by another task than its update's (`key_mismatch`): a replay selects a
task's records by key, and live and replay must send the same updates.

The hub computes partitions with the count `progress.updates` had when it started: its
positions, its cache and its subscriptions' offsets are of those partitions. When the count
changes it stops the process (`PartitionsGrew`, decision 0138), which its supervisor starts
again; clients resume by offset. It looks every `CHECK_S`, and before it skips a record as
`wrong_partition`: after a growth, an update in its task's new partition looks misplaced.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Any

from ytmaker_gateway.fanout.cache import UpdateCache
from ytmaker_gateway.fanout.delivery import (
    BAD_RECORDS,
    Delivery,
    delivery_from_record,
    key_mismatch,
)
from ytmaker_gateway.fanout.subscription import ProjectFeed, Subscription
from ytmaker_gateway.settings import GatewaySettings
from ytmaker_shared.events import DecodeError
from ytmaker_shared.kafka.follower import LogFollower
from ytmaker_shared.kafka.growth import PartitionWatch
from ytmaker_shared.topics import Topic, misplaced, task_partition

log = logging.getLogger(__name__)


class Unconfirmed(Exception):
    """A record that looks misplaced while the partition count is not confirmed."""


class Hub:
    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.topic = settings.topics.name(Topic.PROGRESS_UPDATES)
        self.cache = UpdateCache(
            per_task=settings.cache_updates_per_task,
            tasks=settings.cache_tasks,
            max_bytes=settings.cache_bytes,
        )
        self.epoch: str | None = None
        self.positions: dict[int, int] = {}
        self.start_positions: dict[int, int] = {}
        self._tasks: dict[str, set[Subscription]] = defaultdict(set)
        self._projects: dict[str, set[ProjectFeed]] = defaultdict(set)
        self._follower: LogFollower | None = None
        self.watch: PartitionWatch | None = None
        self.ready = asyncio.Event()

    @property
    def partitions(self) -> int:
        return len(self.positions)

    def partition_of(self, task_id: str) -> int:
        return task_partition(task_id, self.partitions)

    async def start(self, timeout_s: float = 60.0) -> None:
        """Connect, wait (up to `timeout_s`) for the topic, follow all its partitions from their
        ends. Raises TopicMissing."""
        # Every update the fold writes is one, committed or not (decision 0038).
        follower = LogFollower(self.settings, name="gateway-fanout", read_uncommitted=True)
        try:
            ends = await follower.start(self.topic, timeout_s=timeout_s)
            follower.follow(ends)
        except BaseException:
            await follower.stop()
            raise
        self.positions = dict(ends)
        self.start_positions = dict(ends)
        self._follower = follower
        self.watch = PartitionWatch(
            "gateway-fanout", {self.topic: len(ends)}, follower.partition_counts
        )
        self.ready.set()
        log.info("fan-out assigned", extra={"topic": self.topic, "partitions": len(ends)})

    async def run(self, stopping: asyncio.Event) -> None:
        """Read and dispatch until `stopping` is set. `start()` first. Raises PartitionsGrew
        when the topic's partition count changes."""
        assert self._follower is not None and self.watch is not None, "start() the hub first"
        follower, watch = self._follower, self.watch
        try:
            while not stopping.is_set():
                batch = await follower.poll(stopping)
                read_at = time.monotonic()
                for record in batch:
                    try:
                        self.dispatch(*record, confirmed=False)
                    except Unconfirmed:
                        await watch.confirm(read_at)
                        self.dispatch(*record)
                await watch.tick()
        finally:
            await follower.stop()

    def dispatch(
        self,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        *,
        confirmed: bool = True,
    ) -> Delivery | None:
        """Hand one record to its subscribers. A record that cannot be decoded, whose update is
        of a task of another partition, or whose key is not its update's task (a replay, which
        selects a task's records by key, would not send it: `key_mismatch`) is counted, logged
        once and skipped (never written anywhere, never cached). Unless the partition count
        is `confirmed`, a record of another partition's task raises Unconfirmed instead, and
        nothing moves."""
        try:
            delivery = delivery_from_record(partition, offset, value, self.epoch)
            if key != delivery.task_id.encode():
                raise key_mismatch(_text(key), delivery.task_id)
            if error := misplaced(delivery.task_id, partition, self.partitions):
                if not confirmed:
                    raise Unconfirmed
                raise error
        except DecodeError as exc:
            self.positions[partition] = offset + 1
            BAD_RECORDS.skip(self.topic, partition, offset, exc, "live")
            return None
        self.positions[partition] = offset + 1
        self.cache.add(delivery, self.start_positions.get(partition, 0))
        for sub in tuple(self._tasks.get(delivery.task_id, ())):
            sub.offer(delivery)
        for feed in tuple(self._projects.get(delivery.project_id, ())):
            feed.offer(delivery)
        return delivery

    def status_after(self, task_id: str, offset: int | None, epoch: str | None) -> str | None:
        """The task's status in the latest update this gateway has read, if that update is
        later than `offset` of `epoch` (the read model's position of the task; None: it has
        none yet). The log reaches the gateway before it reaches the read model."""
        newest = self.cache.newest(task_id)
        if newest is None or (
            offset is not None and (epoch != self.epoch or newest.offset <= offset)
        ):
            return None
        return newest.status

    def register(self, sub: Subscription) -> int:
        """Start buffering the task's live updates; returns the position that splits replay
        (offsets below it) from live (offsets from it on)."""
        self._tasks[sub.task_id].add(sub)
        return self.positions[self.partition_of(sub.task_id)]

    def unregister(self, sub: Subscription) -> None:
        subs = self._tasks.get(sub.task_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._tasks[sub.task_id]

    def register_project(self, feed: ProjectFeed) -> None:
        self._projects[feed.project_id].add(feed)

    def unregister_project(self, feed: ProjectFeed) -> None:
        feeds = self._projects.get(feed.project_id)
        if feeds is not None:
            feeds.discard(feed)
            if not feeds:
                del self._projects[feed.project_id]

    def stats(self) -> dict[str, Any]:
        return {
            "partitions": self.partitions,
            "subscribed_tasks": len(self._tasks),
            "project_streams": sum(len(f) for f in self._projects.values()),
        }


def _text(key: bytes | None) -> str:
    """A record's key as the task id it should be, for a message (`None`: no key)."""
    return "(none)" if key is None else key.decode(errors="replace")
