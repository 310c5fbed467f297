"""One client's interest in one task, and the rule that makes replay exact
(docs/architecture.md "The guarantees, and how they are kept").

A subscription is registered with the hub *before* the replay starts, in buffering mode: live
updates that arrive meanwhile are kept in `pending`. The replay then sends everything from
`since + 1` up to the hub's position at registration, and `go_live()` drains `pending`.
Every send goes through one check, `offset > last_offset`, so whatever overlaps between
replay, buffer and live is sent once, in order, and nothing in between is skipped.

The buffer is bounded: when more live updates come during a replay than it holds (a busy
task, a hub catching up), it is emptied and the subscription is marked `behind`: those updates
are in the log, so the replay reads on to the hub's new position (`catch_up()`) instead of
giving the client up (docs/decisions/0040-paged-replay.md).
"""

from __future__ import annotations

from ytmaker_gateway.fanout.client_queue import ClientQueue
from ytmaker_gateway.fanout.delivery import Delivery


class Subscription:
    def __init__(
        self, task_id: str, queue: ClientQueue, *, last_offset: int = -1, limit: int
    ) -> None:
        self.task_id = task_id
        self.queue = queue
        self.last_offset = last_offset
        #: The last offset the client said it has: the `since` it resumed after (-1: the
        #: whole run), then what its pongs vouch for (api/connection.py); None: nothing yet.
        #: What a restored session resumes after; never above `last_offset`, which is only
        #: what was queued for it.
        self.acknowledged: int | None = None
        self.project_id: str | None = None
        #: Re-made by the server for `old_client_id` (the client's own subscribe replaces it).
        self.restored = False
        self._limit = limit
        self._pending: list[Delivery] | None = []
        self.cancelled = False
        #: Live updates were dropped from the full buffer: the replay must read on.
        self.behind = False

    @property
    def live(self) -> bool:
        return self._pending is None

    @property
    def buffered(self) -> int:
        """Live updates waiting for the replay to end."""
        return len(self._pending or ())

    def acknowledge(self, offset: int | None) -> None:
        """The client has everything up to `offset` (None: says nothing)."""
        if offset is not None and (self.acknowledged is None or offset > self.acknowledged):
            self.acknowledged = offset

    def cancel(self) -> None:
        """Send nothing more (unsubscribed or replaced); a replay still running stops."""
        self.cancelled = True
        self._pending = None

    def offer(self, delivery: Delivery) -> None:
        """Called by the hub for every update of this task, in offset order."""
        if self._pending is not None:
            if self.behind:
                return  # the replay reads it from the log
            self._pending.append(delivery)
            if len(self._pending) > self._limit:
                self._pending.clear()
                self.behind = True
            return
        self.send(delivery)

    def catch_up(self) -> None:
        """Clear `behind` (the caller now replays up to the hub's current position: what
        arrives from here on is buffered again)."""
        self.behind = False

    def send(self, delivery: Delivery, *, replayed: bool = False) -> None:
        """Send unless this offset was already sent (or an older one). A replayed update
        does not count in the delivery-latency metric (its event is old by design)."""
        if delivery.offset <= self.last_offset or self.cancelled:
            return
        self.last_offset = delivery.offset
        occurred_at = None if replayed else delivery.occurred_at
        self.queue.push(delivery.text, occurred_at)

    def skip_to(self, offset: int) -> None:
        """Consider everything up to `offset` delivered (a snapshot covered it)."""
        self.last_offset = max(self.last_offset, offset)

    def go_live(self) -> None:
        """Send the buffered live updates and deliver directly from now on."""
        pending, self._pending = self._pending or [], None
        for delivery in pending:
            self.send(delivery)


class ProjectFeed:
    """A client's interest in every task of one project (`/projects/{id}/progress`).

    Same rule as `Subscription`, kept per task: an update is sent when its offset is above the
    last one sent for its task.
    """

    def __init__(self, project_id: str, queue: ClientQueue, *, limit: int) -> None:
        self.project_id = project_id
        self.queue = queue
        self.last_offsets: dict[str, int] = {}
        self._limit = limit
        self._pending: list[Delivery] | None = []

    def offer(self, delivery: Delivery) -> None:
        if self._pending is not None:
            self._pending.append(delivery)
            if len(self._pending) > self._limit:
                self.queue.overflow()
            return
        self.send(delivery)

    def send(self, delivery: Delivery) -> None:
        if delivery.offset <= self.last_offsets.get(delivery.task_id, -1):
            return
        self.last_offsets[delivery.task_id] = delivery.offset
        self.queue.push(delivery.text, delivery.occurred_at)

    def go_live(self) -> None:
        pending, self._pending = self._pending or [], None
        for delivery in pending:
            self.send(delivery)
