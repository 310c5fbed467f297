"""Recent history in memory: the last N updates of each task (the first design kept 100).

An update is held as its JSON text, as it came from the log, and parsed when it is read: a
parsed update costs about four times its text in objects that the garbage collector walks, and
the read side holds up to a million of them (docs/decisions/0046-history-in-memory-as-text.md).
The whole is bounded in bytes too, so that the read side fits the memory its deployment gives it.
"""

from __future__ import annotations

from collections import OrderedDict, deque

from ytmaker_progress.readmodel.rows import HistoryItem, StoredUpdate, history_item

#: What an update costs beside its text: the tuple, the string's header, the deque's slot
#: (measured: 1,284 bytes held for 1,134 of text, `bench/read_side_memory.py`).
ENTRY_OVERHEAD = 150


def _size(update: StoredUpdate) -> int:
    return len(update[2]) + ENTRY_OVERHEAD


class RecentHistory:
    """Per task, the last `per_task` updates in offset order; at most `max_tasks` tasks and
    `max_bytes` of updates (the least recently updated tasks are forgotten first).

    The sink `add`s every update after storing it in the database. A task seen for the first
    time since start, or forgotten since, may lack older updates: before reading, the caller
    `merge`s the task's last updates from the database once (`complete()` says whether that is
    needed). Both run in the event loop's thread."""

    def __init__(
        self, per_task: int = 100, max_tasks: int = 10_000, max_bytes: int = 256 * 1024 * 1024
    ) -> None:
        self.per_task = per_task
        self.max_tasks = max_tasks
        self.max_bytes = max_bytes
        self.size = 0  # bytes held, by `_size`
        self._tasks: OrderedDict[str, deque[StoredUpdate]] = OrderedDict()
        self._complete: set[str] = set()

    def add(self, task_id: str, update: StoredUpdate) -> None:
        """Append an update; an offset at or below the last one held is a replay and is
        dropped."""
        held = self._tasks.get(task_id)
        if held is None:
            held = self._tasks[task_id] = deque(maxlen=self.per_task)
        else:
            self._tasks.move_to_end(task_id)
        if held and held[-1][0] >= update[0]:  # offsets
            return
        if len(held) == held.maxlen:
            self.size -= _size(held[0])  # pushed out by the append
        held.append(update)
        self.size += _size(update)
        self._bound()

    def merge(self, task_id: str, stored: list[StoredUpdate]) -> None:
        """Add the task's last updates read from the database (any order); marks it
        complete."""
        by_offset = {update[0]: update for update in stored}
        by_offset.update((update[0], update) for update in self._tasks.get(task_id, ()))
        merged = [by_offset[o] for o in sorted(by_offset)][-self.per_task :]
        self._replace(task_id, deque(merged, maxlen=self.per_task))
        self._complete.add(task_id)
        self._bound()

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
        self._replace(task_id, deque(maxlen=self.per_task))
        self._complete.add(task_id)

    def _replace(self, task_id: str, held: deque[StoredUpdate]) -> None:
        self.size -= sum(map(_size, self._tasks.get(task_id, ())))
        self._tasks[task_id] = held
        self._tasks.move_to_end(task_id)
        self.size += sum(map(_size, held))

    def _bound(self) -> None:
        """Forget the least recently updated tasks past either bound (never the last one)."""
        while len(self._tasks) > 1 and (
            len(self._tasks) > self.max_tasks or self.size > self.max_bytes
        ):
            forgotten, held = self._tasks.popitem(last=False)
            self.size -= sum(map(_size, held))
            self._complete.discard(forgotten)
