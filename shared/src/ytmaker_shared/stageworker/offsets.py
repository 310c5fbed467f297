"""Which offset of a partition may be committed while work runs in the background (decision
0010): the lowest offset whose work is not finished, or everything handled when none is."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Generic, TypeVar

P = TypeVar("P")


@dataclass
class _Partition:
    handled: int | None = None  # every record below this offset was handed to the handler
    committed: int | None = None
    pending: Counter[int] = field(default_factory=Counter)


class OffsetTracker(Generic[P]):
    """Per partition: offsets handed out (`handled`), offsets whose work runs (`begin`/`end`),
    and the next offset that is safe to commit. Pure bookkeeping, no I/O."""

    def __init__(self) -> None:
        self._parts: dict[P, _Partition] = {}

    def begin(self, tp: P, offset: int) -> None:
        """Work started by the record at `offset` runs; its offset is held back until `end`."""
        self._parts.setdefault(tp, _Partition()).pending[offset] += 1

    def end(self, tp: P, offset: int) -> None:
        part = self._parts.get(tp)
        if part is None or part.pending[offset] <= 0:
            return  # the partition was revoked meanwhile
        part.pending[offset] -= 1
        if part.pending[offset] == 0:
            del part.pending[offset]

    def handled(self, tp: P, next_offset: int) -> None:
        """Every record below `next_offset` has been through the handler."""
        part = self._parts.setdefault(tp, _Partition())
        part.handled = max(part.handled or 0, next_offset)

    def committable(self, tp: P) -> int | None:
        """The offset to commit now, or None when nothing new may be committed."""
        part = self._parts.get(tp)
        if part is None or part.handled is None:
            return None
        target = min([part.handled, *part.pending])
        if part.committed is not None and target <= part.committed:
            return None
        return target

    def committed(self, tp: P, offset: int) -> None:
        part = self._parts.setdefault(tp, _Partition())
        part.committed = max(part.committed or 0, offset)

    def pending(self, tp: P) -> int:
        part = self._parts.get(tp)
        return sum(part.pending.values()) if part else 0

    def forget(self, tp: P) -> None:
        """The partition went to another member: drop everything known about it."""
        self._parts.pop(tp, None)
