"""Partitions added under a running reader (decision 0138).

A task's records are in the partition its id hashes to modulo its topic's partition count, and
readers order and resume a task by that partition's offsets (decision 0123). A reader computes
that partition with the counts its topics had when it started; what it holds is tied to those
counts (the hub's positions and its subscriptions' offsets, the fold's lanes, the sink's
assignment). When a count changes, it does not follow the change: it stops, and its supervisor
(`run_local`, Kubernetes) starts it again with the new counts.

`PartitionWatch` looks at the counts every `CHECK_S` and, before a reader calls a record
misplaced (`ytmaker_shared.topics.misplaced`), once more: a count that grew makes a record in
its right partition look misplaced, and it must not be skipped for that. One look begun after
the record was read is enough (a record is written before it is read, and partitions only
grow), so a batch full of records that are truly misplaced costs one look, not one each.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

log = logging.getLogger(__name__)

#: How often a running reader looks at its topics' partition counts (one metadata request).
CHECK_S = 10.0

#: The counts of the watched topics now; None when the broker did not answer.
Counts = Callable[[], Awaitable[Mapping[str, int] | None]]


class PartitionsGrew(RuntimeError):
    """A topic's partition count is not the one this process started with: the process must
    stop and be started again."""


class PartitionWatch:
    """`started`: each watched topic's partition count when the reader started; `counts`
    asks the broker for them now."""

    def __init__(self, reader: str, started: Mapping[str, int], counts: Counts) -> None:
        self.reader = reader
        self.started = dict(started)
        self.counts = counts
        self.interval_s = CHECK_S
        self._next = time.monotonic() + self.interval_s
        self._looked = float("-inf")  # when the last answered look began (monotonic clock)

    async def tick(self) -> None:
        """Look if `interval_s` has passed since the last look; a broker that does not answer
        is asked again next time. Raises PartitionsGrew."""
        if time.monotonic() >= self._next and (now := await self._look()) is not None:
            self._compare(now)

    async def confirm(self, read_at: float) -> None:
        """Make sure of the counts for a record read at `read_at` (monotonic clock): look
        unless a look begun since has answered, asking again until the broker answers (it
        has just sent the record). Raises PartitionsGrew."""
        if self._looked >= read_at:
            return
        while (now := await self._look()) is None:
            log.info("no broker answered: the partition counts are asked again")
            await asyncio.sleep(1.0)
        self._compare(now)

    async def _look(self) -> Mapping[str, int] | None:
        began = time.monotonic()
        self._next = began + self.interval_s
        now = await self.counts()
        if now is not None:
            self._looked = began
        return now

    def _compare(self, now: Mapping[str, int]) -> None:
        changed = {
            topic: f"{count} -> {now[topic]}"
            for topic, count in self.started.items()
            if now.get(topic) and now[topic] != count
        }
        if changed:
            log.error(
                "partition count changed: stopping, to be started again with the new count",
                extra={"reader": self.reader, "partitions": changed},
            )
            raise PartitionsGrew(
                f"{self.reader}: the partitions of {changed} changed since it started; it reads "
                "with the counts it started with, so it stops to be started again "
                "(docs/deploy.md, decision 0138)"
            )
