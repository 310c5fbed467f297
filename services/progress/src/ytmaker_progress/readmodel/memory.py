"""Recent history in memory: the last N updates of each task (the first design kept 100)."""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any

Item = dict[str, Any]  # {"offset", "epoch", "update"}


class RecentHistory:
    """Per task, the last `per_task` items in offset order; at most `max_tasks` tasks (the least
    recently updated are forgotten first).

    The sink `add`s every update after storing it in the database. A task seen for the first
    time since start may lack older items: before reading, the caller `merge`s the task's last
    items from the database once (`complete()` says whether that is needed). Both run in the
    event loop's thread."""

    def __init__(self, per_task: int = 100, max_tasks: int = 10_000) -> None:
        self.per_task = per_task
        self.max_tasks = max_tasks
        self._tasks: OrderedDict[str, deque[Item]] = OrderedDict()
        self._complete: set[str] = set()

    def add(self, task_id: str, item: Item) -> None:
        """Append an item; an offset at or below the last one held is a replay and is dropped."""
        items = self._tasks.get(task_id)
        if items is None:
            items = self._tasks[task_id] = deque(maxlen=self.per_task)
            while len(self._tasks) > self.max_tasks:
                forgotten, _ = self._tasks.popitem(last=False)
                self._complete.discard(forgotten)
        else:
            self._tasks.move_to_end(task_id)
        if items and items[-1]["offset"] >= item["offset"]:
            return
        items.append(item)

    def merge(self, task_id: str, stored: list[Item]) -> None:
        """Add the task's last items read from the database (any order); marks it complete."""
        by_offset = {item["offset"]: item for item in stored}
        by_offset.update((item["offset"], item) for item in self._tasks.get(task_id, ()))
        merged = [by_offset[o] for o in sorted(by_offset)][-self.per_task :]
        self._tasks[task_id] = deque(merged, maxlen=self.per_task)
        self._complete.add(task_id)

    def complete(self, task_id: str) -> bool:
        return task_id in self._complete

    def items(self, task_id: str, *, since: int = -1, limit: int | None = None) -> list[Item]:
        out = [item for item in self._tasks.get(task_id, ()) if item["offset"] > since]
        return out[:limit] if limit is not None else out

    def drop(self, task_id: str) -> None:
        """Forget a task's items (its history was deleted); it stays complete and empty."""
        self._tasks[task_id] = deque(maxlen=self.per_task)
        self._complete.add(task_id)
