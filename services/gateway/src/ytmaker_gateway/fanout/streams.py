"""Subscribing a client to a task: snapshot, exact replay, then live (docs/protocol.md
"Offsets, epochs and resume").

The order of operations is what makes the switch from replay to live exact:

1. register the subscription with the hub (it buffers live updates from position P on);
2. decide what the client gets: with `since` still held, every update after it; with `since`
   null or gone (before the partition's first offset, beyond its end, or another epoch), a
   snapshot of the current state and every update after the snapshot's offset;
3. replay offsets below P, page by page (docs/decisions/0040-paged-replay.md): from Kafka
   until the hub's cache provably holds the rest, and for a finished task only up to its last
   update (the read model knows its offset). Each page waits for room in the client's queue,
   so the replay moves at the pace the client reads and never holds more than a page;
4. go live: drain the buffer. Every send is deduplicated by offset, so overlaps are harmless.

All messages go through the client's queue, in this order: `subscribed`, `snapshot`, replayed
updates, live updates.
"""

from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ytmaker_gateway import metrics
from ytmaker_gateway.fanout.client_queue import ClientQueue
from ytmaker_gateway.fanout.delivery import Delivery
from ytmaker_gateway.fanout.hub import Hub
from ytmaker_gateway.fanout.replay import Page
from ytmaker_gateway.fanout.subscription import ProjectFeed, Subscription
from ytmaker_gateway.rules.position import StreamPosition
from ytmaker_gateway.rules.protocol import message, state_payload
from ytmaker_shared.events import uuid7_millis
from ytmaker_shared.progress import TERMINAL_STATUSES

log = logging.getLogger(__name__)

#: How far before a task id's UUIDv7 time a replay from the task's start begins reading.
_CLOCK_SKEW_MS = 60_000
_STARTS_KEPT = 10_000


class HistoryReader(Protocol):
    """Reads past updates of `progress.updates` (fanout.replay.ReplayReader)."""

    async def bounds(self, partition: int) -> tuple[int, int]: ...
    async def offset_at(self, partition: int, timestamp_ms: int) -> int | None: ...
    async def warm_up(self) -> None: ...
    async def page(
        self, task_id: str, partition: int, first: int, end: int, epoch: str | None, limit: int
    ) -> Page: ...
    async def close(self) -> None: ...


@dataclass(frozen=True)
class Plan:
    """What a subscription sends before going live."""

    recovered: bool
    first: int  # first offset to replay
    after: int  # the offset the client continues after (`subscribed.offset`)
    snapshot: dict[str, Any] | None


@dataclass
class _Source:
    kafka: bool = False


class Streams:
    """`page_size`: updates per replay page; a replay keeps the client's queue at most half
    full (the other half is for live updates) and gives up on a client whose writer sent
    nothing for `stall_s` (1013)."""

    def __init__(
        self,
        hub: Hub,
        reader: HistoryReader,
        queue_limit: int,
        *,
        page_size: int = 500,
        stall_s: float = 20.0,
    ) -> None:
        self.hub = hub
        self.reader = reader
        self.queue_limit = queue_limit
        self.page_size = page_size
        self.stall_s = stall_s
        self._starts: OrderedDict[str, int] = OrderedDict()

    async def subscribe(
        self,
        task_id: str,
        queue: ClientQueue,
        position: StreamPosition,
        *,
        state: dict[str, Any] | None,
        restored: bool = False,
        attach: Callable[[Subscription], None] | None = None,
    ) -> Subscription:
        """Subscribe `queue` to the task after `position` (the caller has checked access and
        fetched `state`) and return once the replay is written to the queue and the
        subscription is live. The queue's writer must be running: the replay waits for it.

        `restored` marks a subscription the server re-made from a session (`reconnected`);
        it is said in `subscribed`, so that a client that re-subscribes itself can tell the
        answer to its own request from the restored stream. `attach` is called with the
        subscription once `subscribed` is queued, before the replay (so that a connection
        counts it, and its offsets, while a long replay runs).

        Raises TimeoutError or a KafkaError when the replay cannot be read; the subscription
        is then unregistered. A client that stops reading ends the replay early (its queue
        is then overflowed and its connection closes).
        """
        await self.hub.ready.wait()
        if self.hub.epoch is None and state is not None and state.get("epoch"):
            self.hub.epoch = str(state["epoch"])
        sub = Subscription(task_id, queue, limit=self.queue_limit)
        end = self.hub.register(sub)
        try:
            partition = self.hub.partition_of(task_id)
            plan = await self._plan(task_id, partition, position, state, end)
            queue.push(
                message(
                    "subscribed",
                    {
                        "task_id": task_id,
                        "offset": plan.after if plan.after >= 0 else None,
                        "epoch": self.hub.epoch,
                        "recovered": plan.recovered,
                        "restored": restored,
                    },
                    task_id,
                    plan.after if plan.after >= 0 else None,
                )
            )
            if plan.snapshot is not None:
                queue.push(
                    message(
                        "snapshot",
                        state_payload(plan.snapshot, self.hub.epoch),
                        task_id,
                        plan.snapshot.get("offset"),
                    )
                )
            sub.skip_to(plan.after)
            if plan.recovered:  # the client has everything up to its `since` (-1: the start)
                sub.acknowledge(plan.after)
            if attach is not None:
                attach(sub)
            source = _Source()
            high_water = max(1, queue.maxsize // 2)
            last = _last_offset(state, self.hub.epoch)
            first = plan.first
            while True:
                pages = self._pages(task_id, partition, first, end, last, source)
                async with contextlib.aclosing(pages):
                    async for page in pages:
                        if not await self._send_page(sub, page, high_water):
                            break
                if not sub.behind or sub.cancelled or queue.overflowed or queue.closed:
                    break
                # More live updates came than the buffer holds: they are in the log. Read
                # on to where the hub is now; from here on they are buffered again.
                first, end = end, self.hub.positions[partition]
                sub.catch_up()
            # The buffered live updates go out at once: make room for them first.
            await queue.room(sub.buffered, high_water=queue.maxsize, stall_s=self.stall_s)
            sub.go_live()
        except BaseException:
            self.hub.unregister(sub)
            raise
        if position.offset is not None:
            metrics.REPLAYS.labels(
                "kafka" if source.kafka else "memory", str(plan.recovered).lower()
            ).inc()
        return sub

    async def resumable(self, task_id: str, position: StreamPosition) -> bool:
        """Whether every update of the task after `position` can still be replayed: what a
        `subscribed` would say as `recovered`, known before the replay is read (a Socket.IO
        reconnect decides its `pid` by it at connect)."""
        if position.offset is None:
            return False
        await self.hub.ready.wait()
        partition = self.hub.partition_of(task_id)
        end = self.hub.positions[partition]
        return (await self._plan(task_id, partition, position, None, end)).recovered

    async def _plan(
        self,
        task_id: str,
        partition: int,
        position: StreamPosition,
        state: dict[str, Any] | None,
        end: int,
    ) -> Plan:
        since = position.offset
        if since is not None and position.resumable_in(self.hub.epoch):
            if self._cached(task_id, partition, since + 1) and since < end:
                return Plan(True, since + 1, since, None)
            held_from, held_end = await self.reader.bounds(partition)
            if since < max(end, held_end):  # an offset beyond the end: the topic was recreated
                # Nothing of the task lies before its creation: skip what cannot be its.
                first = max(since + 1, await self._task_start(task_id, partition, since + 1))
                if first >= held_from:
                    return Plan(True, first, since, None)
        # A snapshot: `since` is null, no longer held, or from another epoch.
        snapshot_offset = state.get("offset") if state is not None else None
        if isinstance(snapshot_offset, int):
            return Plan(False, snapshot_offset + 1, snapshot_offset, state)
        held_from, _ = await self.reader.bounds(partition)
        return Plan(False, await self._task_start(task_id, partition, held_from), -1, state)

    def _cached(self, task_id: str, partition: int, first: int) -> bool:
        """Whether the hub's cache holds every update of the task from `first` on."""
        start = self.hub.start_positions.get(partition, 0)
        complete_from = self.hub.cache.complete_from(task_id, partition, start)
        return complete_from is not None and first >= complete_from

    async def _task_start(self, task_id: str, partition: int, default: int) -> int:
        """The first offset that can hold an update of the task: from its UUIDv7 time (minus
        clock skew) when the id is one, else `default`. Remembered per task (it does not
        change), so that a storm of resumes asks Kafka once per task."""
        created_ms = uuid7_millis(task_id)
        if created_ms is None:
            return default
        known = self._starts.get(task_id)
        if known is not None:
            return known
        found = await self.reader.offset_at(partition, created_ms - _CLOCK_SKEW_MS)
        if found is None:
            return self.hub.positions[partition]
        self._starts[task_id] = found
        while len(self._starts) > _STARTS_KEPT:
            self._starts.popitem(last=False)
        return found

    async def _send_page(self, sub: Subscription, page: list[Delivery], high_water: int) -> bool:
        """Queue a page (a Kafka read may hold more than `page_size`: a whole fetch) in
        pieces of `page_size` (or `high_water`, for a small queue), each when it fits; False
        when the replay must stop (the subscription was dropped, or the client does not read:
        its connection closes 1013)."""
        size = min(self.page_size, high_water)
        for i in range(0, len(page), size):
            piece = page[i : i + size]
            if sub.cancelled or not await sub.queue.room(
                len(piece), high_water=high_water, stall_s=self.stall_s
            ):
                return False
            for delivery in piece:
                sub.send(delivery, replayed=True)
        return True

    async def _pages(
        self, task_id: str, partition: int, first: int, end: int, last: int | None, source: _Source
    ) -> AsyncGenerator[list[Delivery], None]:
        """The task's updates with `first <= offset < end`, in pages of about `page_size`:
        from Kafka until the hub's cache provably holds the rest, then from the cache. `last`
        (the offset after a finished task's last update) ends the reading there: nothing of
        the task lies beyond it."""
        start = self.hub.start_positions.get(partition, 0)
        position = first
        while position < end:
            cached = self.hub.cache.read(task_id, partition, position, end, start)
            if cached is not None:
                for i in range(0, len(cached), self.page_size):
                    yield cached[i : i + self.page_size]
                return
            if last is not None and position >= last:
                return
            stop = end
            complete_from = self.hub.cache.complete_from(task_id, partition, start)
            if complete_from is not None and complete_from > position:
                stop = min(stop, complete_from)
            if last is not None:
                stop = min(stop, last)
            source.kafka = True
            page = await self.reader.page(
                task_id, partition, position, stop, self.hub.epoch, self.page_size
            )
            position = page.position
            if page.items:
                yield page.items

    async def watch_project(
        self, project_id: str, queue: ClientQueue, initial: dict[str, Any] | None
    ) -> ProjectFeed:
        """Stream every update of the project's tasks after `initial` (the latest task's state,
        sent as `initial`). Registered before `initial` is sent, so nothing falls between."""
        await self.hub.ready.wait()
        feed = ProjectFeed(project_id, queue, limit=self.queue_limit)
        self.hub.register_project(feed)
        task_id = initial.get("task_id") if initial else None
        queue.push(
            message(
                "initial",
                {"project_id": project_id, "state": initial},
                task_id,
                initial.get("offset") if initial else None,
            )
        )
        if initial is not None and isinstance(initial.get("offset"), int):
            feed.last_offsets[initial["task_id"]] = initial["offset"]
        feed.go_live()
        return feed


def _last_offset(state: dict[str, Any] | None, epoch: str | None) -> int | None:
    """The offset after a finished task's last update, from its state in the read model; None
    while the task may still get updates (or the state is of another epoch)."""
    if state is None or state.get("status") not in TERMINAL_STATUSES:
        return None
    if state.get("epoch") and epoch and state["epoch"] != epoch:
        return None
    offset = state.get("offset")
    return offset + 1 if type(offset) is int and offset >= 0 else None
