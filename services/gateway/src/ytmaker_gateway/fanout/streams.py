"""Subscribing a client to a task: snapshot, exact replay, then live (DESIGN §4, §5).

The order of operations is what makes the switch from replay to live exact:

1. register the subscription with the hub (it buffers live updates from position P on);
2. decide what the client gets: with `since` still held, every update after it; with `since`
   null or gone (before the partition's first offset, beyond its end, or another epoch), a
   snapshot of the current state and every update after the snapshot's offset;
3. replay offsets below P (from the hub's cache when it provably holds them, else from Kafka);
4. go live: drain the buffer. Every send is deduplicated by offset, so overlaps are harmless.

All messages go through the client's outbox, in this order: `subscribed`, `snapshot`, replayed
updates, live updates.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from ytmaker_gateway import metrics
from ytmaker_gateway.fanout.delivery import Delivery
from ytmaker_gateway.fanout.hub import Hub
from ytmaker_gateway.fanout.outbox import Outbox
from ytmaker_gateway.fanout.replay import uuid7_millis
from ytmaker_gateway.fanout.subscription import ProjectFeed, Subscription
from ytmaker_gateway.protocol import message, state_payload

log = logging.getLogger(__name__)

#: How far before a task id's UUIDv7 time a replay from the task's start begins reading.
_CLOCK_SKEW_MS = 60_000


class HistoryReader(Protocol):
    """Reads past updates of `progress.updates` (fanout.replay.ReplayReader)."""

    async def bounds(self, partition: int) -> tuple[int, int]: ...
    async def offset_at(self, partition: int, timestamp_ms: int) -> int | None: ...
    async def read(
        self, task_id: str, partition: int, first: int, end: int, epoch: str | None
    ) -> list[Delivery]: ...
    async def close(self) -> None: ...


@dataclass(frozen=True)
class Plan:
    """What a subscription sends before going live."""

    recovered: bool
    first: int  # first offset to replay
    after: int  # the offset the client continues after (`subscribed.offset`)
    snapshot: dict[str, Any] | None


class Streams:
    def __init__(self, hub: Hub, reader: HistoryReader, queue_limit: int) -> None:
        self.hub = hub
        self.reader = reader
        self.queue_limit = queue_limit

    async def subscribe(
        self,
        task_id: str,
        outbox: Outbox,
        *,
        since: int | None,
        epoch: str | None,
        state: dict[str, Any] | None,
        restored: bool = False,
    ) -> Subscription:
        """Subscribe `outbox` to the task (the caller has checked access and fetched `state`).

        `restored` marks a subscription the server re-made from a session (`reconnected`);
        it is said in `subscribed`, so that a client that re-subscribes itself can tell the
        answer to its own request from the restored stream.

        Raises TimeoutError or a KafkaError when the replay cannot be read; the subscription
        is then unregistered.
        """
        await self.hub.ready.wait()
        if self.hub.epoch is None and state is not None and state.get("epoch"):
            self.hub.epoch = str(state["epoch"])
        sub = Subscription(task_id, outbox, limit=self.queue_limit)
        end = self.hub.register(sub)
        try:
            partition = self.hub.partition_of(task_id)
            plan = await self._plan(task_id, partition, since, epoch, state, end)
            outbox.push(
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
                outbox.push(
                    message(
                        "snapshot",
                        state_payload(plan.snapshot, self.hub.epoch),
                        task_id,
                        plan.snapshot.get("offset"),
                    ),
                    None,
                    task_id,
                    plan.after,
                )
            sub.skip_to(plan.after)
            for delivery in await self._replay(task_id, partition, plan.first, end):
                sub.send(delivery)
            sub.go_live()
        except BaseException:
            self.hub.unregister(sub)
            raise
        if since is not None:
            metrics.REPLAYS.labels(
                "memory" if self._cached(task_id, partition, plan.first) else "kafka",
                str(plan.recovered).lower(),
            ).inc()
        return sub

    async def _plan(
        self,
        task_id: str,
        partition: int,
        since: int | None,
        epoch: str | None,
        state: dict[str, Any] | None,
        end: int,
    ) -> Plan:
        if since is not None and not (epoch and self.hub.epoch and epoch != self.hub.epoch):
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
        start = self.hub.start_positions.get(partition, 0)
        return self.hub.cache.read(task_id, partition, first, first, start) is not None

    async def _task_start(self, task_id: str, partition: int, default: int) -> int:
        """The first offset that can hold an update of the task: from its UUIDv7 time (minus
        clock skew) when the id is one, else `default`."""
        created_ms = uuid7_millis(task_id)
        if created_ms is None:
            return default
        found = await self.reader.offset_at(partition, created_ms - _CLOCK_SKEW_MS)
        return self.hub.positions[partition] if found is None else found

    async def _replay(self, task_id: str, partition: int, first: int, end: int) -> list[Delivery]:
        if first >= end:
            return []
        start = self.hub.start_positions.get(partition, 0)
        cached = self.hub.cache.read(task_id, partition, first, end, start)
        if cached is not None:
            return cached
        return await self.reader.read(task_id, partition, first, end, self.hub.epoch)

    async def watch_project(
        self, project_id: str, outbox: Outbox, initial: dict[str, Any] | None
    ) -> ProjectFeed:
        """Stream every update of the project's tasks after `initial` (the latest task's state,
        sent as `initial`). Registered before `initial` is sent, so nothing falls between."""
        await self.hub.ready.wait()
        feed = ProjectFeed(project_id, outbox, limit=self.queue_limit)
        self.hub.register_project(feed)
        task_id = initial.get("task_id") if initial else None
        outbox.push(
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
