"""Recent updates per task, kept by the hub so that most replays need no Kafka read.

The hub sees every record of every partition from its start position on, so a task's cached
updates are complete from `complete_from` (the partition's start position, raised when old
updates are evicted). A replay from offset `first` may use the cache when
`first >= complete_from`; otherwise it reads Kafka.

Bounded three ways: updates per task, tasks, and bytes (the messages' text plus a fixed
overhead per entry). Past the byte budget the task updated longest ago goes first, whole;
a task alone over it loses its oldest updates (docs/decisions/0040-paged-replay.md).

A task dropped whole leaves the offset after its last update behind (for up to
`DROPPED_PER_TASK` times as many tasks as the cache holds): until its next update comes (and
brings it back), it has none after that offset, so a replay from there needs no Kafka read,
however many other tasks' updates passed meanwhile (a reconnect to a task that has been quiet
while a busy partition moved on scanned all of them before).

Entries are the fields of a `Delivery` in a plain tuple, not the named tuple itself: the
garbage collector stops tracking a plain tuple of strings and numbers at its first collection,
never a named tuple, and a full collection walks every tracked object. Full, the cache is half
a million updates, which as named tuples made up most of what the gateway's full collection
walked (decision 0106).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Final

from ytmaker_gateway.fanout.delivery import Delivery

#: What one cached update costs besides its text (the tuple, its numbers and references).
ENTRY_OVERHEAD = 200
#: Dropped tasks remembered (their last offset), per task the cache holds.
DROPPED_PER_TASK = 10

#: A cached update: `tuple(delivery)`.
_Entry = tuple[int, int, str, str, str, str, str, float, str]
_PARTITION: Final = 0
_OFFSET: Final = 1
_TEXT: Final = 8
assert Delivery._fields[_PARTITION] == "partition" and Delivery._fields[_OFFSET] == "offset"
assert Delivery._fields[_TEXT] == "text"


def _size(entry: _Entry) -> int:
    return len(entry[_TEXT]) + ENTRY_OVERHEAD


@dataclass
class _TaskUpdates:
    complete_from: int
    items: deque[_Entry] = field(default_factory=deque)
    size: int = 0


class UpdateCache:
    def __init__(self, *, per_task: int, tasks: int, max_bytes: int = 256 * 1024 * 1024) -> None:
        self._per_task = per_task
        self._tasks = tasks
        self._max_bytes = max_bytes
        self._size = 0
        self._by_task: OrderedDict[str, _TaskUpdates] = OrderedDict()
        # Per partition: above the last offset of any task dropped from the cache. A task not
        # in the cache (or back in it after being dropped) is known to have no update missing
        # only from there on.
        self._floor: dict[int, int] = {}
        # Tasks dropped whole, most recent last: the offset after the task's last update.
        self._dropped: OrderedDict[str, int] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self._per_task > 0 and self._tasks > 0 and self._max_bytes > 0

    @property
    def size(self) -> int:
        """Bytes held (text plus the fixed overhead per update)."""
        return self._size

    def add(self, delivery: Delivery, partition_start: int) -> None:
        """Remember one update; `partition_start` is where the hub began reading its partition."""
        if not self.enabled:
            return
        entry = self._by_task.get(delivery.task_id)
        if entry is None:
            since = self._known_from(delivery.task_id, delivery.partition)
            self._dropped.pop(delivery.task_id, None)
            entry = self._by_task[delivery.task_id] = _TaskUpdates(max(partition_start, since))
        else:
            self._by_task.move_to_end(delivery.task_id)
        item: _Entry = (*delivery,)
        entry.items.append(item)
        entry.size += _size(item)
        self._size += _size(item)
        if len(entry.items) > self._per_task:
            self._evict_oldest(entry)
        while len(self._by_task) > self._tasks or (
            self._size > self._max_bytes and len(self._by_task) > 1
        ):
            self._drop_least_recent()
        while self._size > self._max_bytes and entry.items:
            self._evict_oldest(entry)

    def _evict_oldest(self, entry: _TaskUpdates) -> None:
        evicted = entry.items.popleft()
        entry.complete_from = evicted[_OFFSET] + 1
        entry.size -= _size(evicted)
        self._size -= _size(evicted)

    def _drop_least_recent(self) -> None:
        task_id, dropped = self._by_task.popitem(last=False)
        self._size -= dropped.size
        end = dropped.complete_from
        if dropped.items:
            last = dropped.items[-1]
            end = last[_OFFSET] + 1
            floor = self._floor.get(last[_PARTITION], 0)
            self._floor[last[_PARTITION]] = max(floor, end)
        self._dropped[task_id] = end
        if len(self._dropped) > DROPPED_PER_TASK * self._tasks:
            self._dropped.popitem(last=False)  # that task falls back on its partition's floor

    def _known_from(self, task_id: str, partition: int) -> int:
        """For a task not in the cache: the offset from which it is known to have no update."""
        end = self._dropped.get(task_id)
        return end if end is not None else self._floor.get(partition, 0)

    def complete_from(self, task_id: str, partition: int, partition_start: int) -> int | None:
        """The offset from which the cache holds every update of the task (None: it keeps
        nothing)."""
        if not self.enabled:
            return None
        entry = self._by_task.get(task_id)
        if entry is not None:
            return entry.complete_from
        return max(partition_start, self._known_from(task_id, partition))

    def newest(self, task_id: str) -> Delivery | None:
        """The task's latest update held, if any."""
        entry = self._by_task.get(task_id)
        return Delivery._make(entry.items[-1]) if entry is not None and entry.items else None

    def read(
        self, task_id: str, partition: int, first: int, end: int, partition_start: int
    ) -> list[Delivery] | None:
        """The task's updates with `first <= offset < end`, or None when the cache cannot
        prove it holds all of them."""
        complete_from = self.complete_from(task_id, partition, partition_start)
        if complete_from is None or first < complete_from:
            return None
        entry = self._by_task.get(task_id)
        if entry is None:
            return []
        found: list[Delivery] = []
        for item in reversed(entry.items):  # a replay wants the newest: stop before them
            if item[_OFFSET] < first:
                break
            if item[_OFFSET] < end:
                found.append(Delivery._make(item))
        found.reverse()
        return found
