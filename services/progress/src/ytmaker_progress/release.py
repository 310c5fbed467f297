"""Which of a lane's fetched records may be folded now: pure, no I/O (decision 0026).

Within a poll the lane's topics are merged by timestamp, but a poll may bring one topic further
in time than another (a backlog: the small `pipeline.tasks` partition is read to its end while
the stage topics are not). So a record is released only up to the earliest watermark (latest
timestamp delivered) of any input partition in a backlog (more than `backlog_records` behind
its last stable offset) or not fetched yet (one with nothing held releases nothing); a lane
without a backlog releases everything, so a live stream, always a few records behind, is never
held. The partition with the earliest watermark releases all it holds, so the lane always moves
on.

A partition that is behind but has delivered nothing for `STALLED_AFTER_S` stops holding the
others back, so one that never delivers cannot stall the lane (a busy consumer still working
through other partitions of a backlog is not a stall); and a lane that has released nothing for
as long releases everything it holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

#: How long a partition that is behind may deliver nothing before it no longer holds back
#: the lane's other partitions.
STALLED_AFTER_S = 5.0

P = TypeVar("P")  # an input partition
R = TypeVar("R")  # a record, with a `timestamp`


@dataclass(frozen=True)
class Input(Generic[P]):
    """What the policy needs to know of one input partition of the lane."""

    partition: P
    #: Records between its position and its last stable offset; None: not fetched yet.
    behind: int | None
    #: When it last delivered records (monotonic clock); None: never.
    delivered_at: float | None


@dataclass(frozen=True)
class Released(Generic[P, R]):
    ready: dict[P, list[R]]  # to fold now, each partition in offset order
    held: dict[P, list[R]]  # to keep for a later round
    #: True when records went out of order because nothing was released for too long.
    forced: bool


def release(
    held: Mapping[P, list[R]],
    watermarks: Mapping[P, int],
    inputs: list[Input[P]],
    *,
    now: float,
    opened_at: float,
    released_at: float,
    backlog_records: int,
) -> Released[P, R]:
    """Split `held` (per partition, in offset order) into what may be folded now and what
    waits; `watermarks` are the latest timestamps delivered per partition."""
    cutoff = float("inf")
    for each in inputs:
        if each.behind is not None and each.behind <= backlog_records:
            continue  # caught up, or as good as: no constraint
        if held.get(each.partition):
            cutoff = min(cutoff, watermarks[each.partition])
        elif now - (each.delivered_at or opened_at) < STALLED_AFTER_S:
            cutoff = float("-inf")  # its next records may come before anything held
    ready: dict[P, list[R]] = {}
    kept: dict[P, list[R]] = {}
    for partition, records in held.items():
        n = 0
        while n < len(records) and record_time(records[n]) <= cutoff:
            n += 1
        if n:
            ready[partition] = records[:n]
        if n < len(records):
            kept[partition] = records[n:]
    if not ready and kept and now - released_at > STALLED_AFTER_S:
        return Released(ready=dict(kept), held={}, forced=True)
    return Released(ready=ready, held=kept, forced=False)


def record_time(record: Any) -> int:
    """A record's timestamp (ms), by which the lane merges its partitions."""
    return int(record.timestamp)
