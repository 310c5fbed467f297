"""What one connection watches: its task subscriptions and its project stream, each held
registered with the hub from `attach` to `drop` (or `close`), and counted while held in
`ytmaker_gateway_project_watchers` (after encode/broadcaster: register and unregister, with
their metric, in one place). The WebSocket connection and the Socket.IO client each keep one.
"""

from __future__ import annotations

from collections.abc import Iterator

from ytmaker_gateway import metrics
from ytmaker_gateway.fanout.hub import Hub
from ytmaker_gateway.fanout.subscription import ProjectFeed, Subscription


class Watching:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._tasks: dict[str, Subscription] = {}
        self.feed: ProjectFeed | None = None

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._tasks

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[str]:
        return iter(self._tasks)

    def get(self, task_id: str) -> Subscription | None:
        return self._tasks.get(task_id)

    def subscriptions(self) -> list[Subscription]:
        """The subscriptions held, one per task."""
        return list(self._tasks.values())

    def attach(self, sub: Subscription) -> None:
        """Hold `sub` (registered with the hub by Streams.subscribe) as the subscription of
        its task, in place of any held before (which is dropped)."""
        self.drop(sub.task_id)
        self._tasks[sub.task_id] = sub
        metrics.PROJECT_WATCHERS.inc()

    def drop(self, task_id: str) -> Subscription | None:
        """Stop the task's subscription and unregister it; the one dropped, or None."""
        sub = self._tasks.pop(task_id, None)
        if sub is not None:
            sub.cancel()
            self.hub.unregister(sub)
            metrics.PROJECT_WATCHERS.dec()
        return sub

    def discard(self, sub: Subscription) -> None:
        """Drop `sub` if it is still the one held for its task (a failed subscribe)."""
        if self._tasks.get(sub.task_id) is sub:
            self.drop(sub.task_id)

    def watch_project(self, feed: ProjectFeed) -> None:
        """Hold the project stream (registered with the hub by Streams.watch_project)."""
        assert self.feed is None, "one project stream per connection"
        self.feed = feed
        metrics.PROJECT_WATCHERS.inc()

    def close(self) -> None:
        """Drop everything held."""
        for task_id in list(self._tasks):
            self.drop(task_id)
        if self.feed is not None:
            self.hub.unregister_project(self.feed)
            self.feed = None
            metrics.PROJECT_WATCHERS.dec()

    def projects(self) -> list[str]:
        """The project of every subscription and of the project stream."""
        found = [sub.project_id for sub in self._tasks.values() if sub.project_id]
        return found + ([self.feed.project_id] if self.feed is not None else [])
