"""Recent history in memory: the last N updates of each task (the first design kept 100).

An update is held as its JSON text, as it came from the log, and parsed when it is read: a
parsed update costs about four times its text in objects that the garbage collector walks, and
the read side holds up to a million of them (docs/decisions/0046-history-in-memory-as-text.md).
"""

from __future__ import annotations

from collections import OrderedDict, deque

from ytmaker_progress.readmodel.rows import HistoryItem, StoredUpdate, history_item


class RecentHistory:
    """Per task, the last `per_task` updates in offset order; at most `max_tasks` tasks (the
    least recently updated are forgotten first).

    The sink `add`s every update after storing it in the database. A task seen for the first
    time since start may lack older updates: before reading, the caller `merge`s the task's
    last updates from the database once (`complete()` says whether that is needed). Both run
    in the event loop's thread."""

    def __init__(self, per_task: int = 100, max_tasks: int = 10_000) -> None:
        self.per_task = per_task
        self.max_tasks = max_tasks
        self._tasks: OrderedDict[str, deque[StoredUpdate]] = OrderedDict()
        self._complete: set[str] = set()

    def add(self, task_id: str, update: StoredUpdate) -> None:
        """Append an update; an offset at or below the last one held is a replay and is
        dropped."""
        held = self._tasks.get(task_id)
        if held is None:
            held = self._tasks[task_id] = deque(maxlen=self.per_task)
            while len(self._tasks) > self.max_tasks:
                forgotten, _ = self._tasks.popitem(last=False)
                self._complete.discard(forgotten)
        else:
            self._tasks.move_to_end(task_id)
        if held and held[-1][0] >= update[0]:  # offsets
            return
        held.append(update)

    def merge(self, task_id: str, stored: list[StoredUpdate]) -> None:
        """Add the task's last updates read from the database (any order); marks it
        complete."""
        by_offset = {update[0]: update for update in stored}
        by_offset.update((update[0], update) for update in self._tasks.get(task_id, ()))
        merged = [by_offset[o] for o in sorted(by_offset)][-self.per_task :]
        self._tasks[task_id] = deque(merged, maxlen=self.per_task)
        self._complete.add(task_id)

    def complete(self, task_id: str) -> bool:
        return task_id in self._complete

    def items(
        self, task_id: str, *, since: int = -1, limit: int | None = None
    ) -> list[HistoryItem]:
        """The task's updates with an offset above `since`, oldest first, parsed."""
        held = [update for update in self._tasks.get(task_id, ()) if update[0] > since]
        return [history_item(update) for update in held[:limit]]

    def drop(self, task_id: str) -> None:
        """Forget a task's updates (its history was deleted); it stays complete and empty."""
        self._tasks[task_id] = deque(maxlen=self.per_task)
        self._complete.add(task_id)
