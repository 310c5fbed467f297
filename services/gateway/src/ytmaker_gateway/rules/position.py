"""Where a client stands in one task's updates: an offset never travels without its epoch
(docs/architecture.md "Progress updates, offsets and epochs")."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StreamPosition:
    """`offset`: the last update the client has (`-1`: none, replay from the start; None:
    nothing to resume from, send a snapshot). `epoch`: the topic id that offset belongs to
    (None: not said, taken to be the current one)."""

    offset: int | None = None
    epoch: str | None = None

    def resumable_in(self, epoch: str | None) -> bool:
        """Whether the offset can be resumed from in the log of `epoch` (the current one):
        there is an offset, and its epoch, when both are known, is that one."""
        if self.offset is None:
            return False
        return not (self.epoch and epoch and self.epoch != epoch)


#: A client that asks for nothing to be replayed: a snapshot, then live updates.
FRESH = StreamPosition()
