"""The garbage collector's schedule of every long-running process (decisions 0033, 0044, 0106,
0112, 0120).

Python's full collections scan every tracked object: the imported modules' functions, classes
and dicts, a thousand clients' connections in the gateway, every task's recent history in the
read side. That is hundreds of thousands to millions of objects, pauses of 100 ms and more (a
p99 by itself) and, in the read side, a tenth of its CPU. So Python's own full collections are
off, and the schedule does them:

- What start-up leaves (the modules: over 100,000 objects in the gateway) is frozen once
  (`gc.freeze()`), out of every collection's reach for the life of the process: it never
  becomes garbage.
- What survives later lives in the oldest generation, which the young collections never scan.
- A full collection of that generation (the frozen start-up heap stays out of it), at most every
  `full_every_s` and only once the heap has grown by a quarter, reclaims the garbage cycles
  there. A heap that does not grow has no such garbage to reclaim, and is not walked at all.
- The quarter is measured from the heap the process has after its first `full_every_s`: what
  it takes in that time (clients connecting, caches filling) is its working set, live, and a
  pass of it would reclaim nothing (decision 0120).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable

from ytmaker_shared.settings import ServiceSettings

log = logging.getLogger(__name__)

#: The oldest generation's threshold under the schedule: how many collections of the middle
#: generation may pass before Python collects everything by itself. The largest it takes, so
#: that it never does (months at any rate): `full_collection()` is the schedule's. Python's own
#: (10, and a quarter of the survivors of the last full collection) collected the read side's
#: whole history twice in 35 s at S1, 0.2 s each (decision 0044).
NO_AUTOMATIC_FULL_COLLECTION = 2**31 - 1


def start_up(threshold: int = 0) -> None:
    """Collect once, freeze what the start-up left for good and leave full collections to the
    schedule; `threshold` > 0 sets the young generation's threshold (0 keeps Python's)."""
    gc.collect()
    gc.freeze()
    young, older, _ = gc.get_threshold()
    gc.set_threshold(threshold or young, older, NO_AUTOMATIC_FULL_COLLECTION)


def full_collection() -> float:
    """Collect every generation but the frozen start-up heap; returns the seconds it took."""
    started = time.perf_counter()
    gc.collect()
    return time.perf_counter() - started


def heap_size() -> int:
    """Tracked objects: the frozen start-up heap and the oldest generation (the young ones are
    a few thousand at most). Walks both: asked only when a full collection may be due."""
    return gc.get_freeze_count() + len(gc.get_objects(generation=2))


def full_collection_due(size: int, mark: int) -> bool:
    """Whether the heap has grown by a quarter since `mark`: Python's own rule. A full pass
    walks everything but the start-up heap (the gateway's thousand connections, the read
    side's million updates of history: 5.6 s of a core), so a heap that does not grow, whose
    garbage cycles would make it grow, is not walked again (decisions 0044 and 0106)."""
    return 4 * size >= 5 * mark


async def run(
    interval_s: float,
    full_every_s: float,
    stopping: asyncio.Event,
    clock: Callable[[], float] = time.monotonic,
    size: Callable[[], int] = heap_size,
) -> None:
    """Every `interval_s`, until `stopping` is set, look at the clock; every `full_every_s` (0:
    never) measure the heap. The first measure marks the working set the process has taken
    since its start; each later one runs `full_collection()` if the heap is
    `full_collection_due` since the mark, which then moves to what the collection left."""
    last_measure, mark = clock(), None
    while not stopping.is_set():
        try:
            await asyncio.wait_for(stopping.wait(), interval_s)
        except TimeoutError:
            if full_every_s <= 0 or clock() - last_measure < full_every_s:
                continue
            objects = size()
            if mark is None:
                mark = objects
                log.info("garbage collection working set", extra={"objects": objects})
            elif full_collection_due(objects, mark):
                took = full_collection()
                log.info("full garbage collection", extra={"seconds": round(took, 4)})
                mark = size()
            last_measure = clock()  # due or not, measured again `full_every_s` later


@contextlib.asynccontextmanager
async def scheduled(settings: ServiceSettings) -> AsyncIterator[None]:
    """The schedule of `settings` (`gc_*`) runs while the block does; nothing when
    `gc_freeze` is off."""
    if not settings.gc_freeze:
        yield
        return
    start_up(settings.gc_threshold)
    stopping = asyncio.Event()
    task = asyncio.create_task(
        run(settings.gc_freeze_interval_s, settings.gc_full_every_s, stopping), name="gc"
    )
    try:
        yield
    finally:
        stopping.set()
        await task
